//! Server-side (Lua) scripts that move stream entries atomically, shared by the
//! worker and dlq-tool. Each runs as one Redis command, so after any crash an
//! entry is in one place or the other, never neither, never both.

use std::sync::LazyLock;

/// Dead-letters an entry a consumer holds: adds the DLQ entry, then acks the
/// origin entry, in one step. Does nothing (returns nil) when the entry is no
/// longer pending on that consumer — another consumer reclaimed it, and the
/// decision is now theirs.
///
/// KEYS: origin stream, DLQ. ARGV: group, consumer, origin entry id, then the
/// DLQ entry's field/value pairs. Returns the DLQ entry id.
pub static DEAD_LETTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', 0, ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return id
"#,
    )
});

/// Replays one entry: puts it on the target stream without its `dlq_*` fields
/// and with `target_group` (the given group, or the entry's `dlq_group`), and
/// deletes it from the source (a DLQ or an archive) — one step. Returns nil
/// when the entry is not in the source (already replayed: two operators
/// replaying the same id deliver it once).
///
/// KEYS: source, target stream. ARGV: entry id, target group (`""`: the
/// entry's `dlq_group`). Returns the new entry id.
pub static REPLAY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return false
end
local fields = found[1][2]
local out = {}
local group = ARGV[2]
local failed_group = nil
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  if name == 'dlq_group' then
    failed_group = value
  end
  if string.sub(name, 1, 4) ~= 'dlq_' and name ~= 'target_group' then
    out[#out + 1] = name
    out[#out + 1] = value
  end
end
if group == '' then
  group = failed_group
end
if not group then
  return redis.error_reply('ERR entry has no dlq_group and no target group was given')
end
out[#out + 1] = 'target_group'
out[#out + 1] = group
local id = redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"#,
    )
});

/// Archives one DLQ entry: adds it, whole, to the archive stream and deletes
/// it from the DLQ — one step — and makes the archive expire no sooner than
/// `ttl` seconds from now. Returns nil when the entry is not in the DLQ.
///
/// KEYS: DLQ, archive key. ARGV: entry id, ttl seconds.
pub static ARCHIVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(found[1][2]))
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[2]) < 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
else
  redis.call('EXPIRE', KEYS[2], ARGV[2], 'GT')
end
return id
"#,
    )
});

/// Runs [`REPLAY`] for `id`: `Ok(None)` when it was not in `source`.
pub async fn replay<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    source: &str,
    target: &str,
    id: &str,
    target_group: Option<&str>,
) -> redis::RedisResult<Option<String>> {
    REPLAY.key(source).key(target).arg(id).arg(target_group.unwrap_or("")).invoke_async(conn).await
}

/// Runs [`ARCHIVE`] for `id`: `Ok(None)` when it was not in `dlq`.
pub async fn archive<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    dlq: &str,
    archive_key: &str,
    id: &str,
    ttl_secs: u64,
) -> redis::RedisResult<Option<String>> {
    ARCHIVE.key(dlq).key(archive_key).arg(id).arg(ttl_secs.max(1)).invoke_async(conn).await
}
