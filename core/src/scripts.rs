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
