//! What a site's pages may hold, checked in one place: by the api on every
//! request that sets them (422, each error at its JSON pointer) and by the
//! worker's build before it renders (a page it cannot render fails the
//! build with the same message).
//!
//! A page is `{"slug", "title", "blocks"}`; a block is one of
//!
//! | `type` | fields |
//! |---|---|
//! | `heading` | `text` (1–200 characters), `level` (1–3, default 2) |
//! | `text` | `text` (1–10,000 characters; line breaks kept) |
//! | `image` | `src` (an `http(s)://` URL or a path from `/`), `alt` (0–300 characters) |
//! | `link` | `href` (an `http(s)://` or `mailto:` URL, or a path from `/`), `text` (1–200 characters) |
//!
//! Strings are stored as given; the renderer escapes every one of them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Most pages of a site.
pub const MAX_PAGES: usize = 50;
/// Most blocks of a page.
pub const MAX_BLOCKS: usize = 200;
/// Longest slug, in characters.
pub const MAX_SLUG_CHARS: usize = 63;
/// Longest name, title, heading or link text, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest text block, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest image description, in characters.
pub const MAX_ALT_CHARS: usize = 300;

/// A page of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Its name in URLs: 1 to 63 lower-case letters, digits and `-`,
    /// starting with a letter or digit; unique within the site.
    #[schema(example = "home", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub slug: String,
    /// Its title: 1 to 200 characters.
    #[schema(example = "Welcome", min_length = 1, max_length = 200)]
    pub title: String,
    /// Its content, in order: at most 200 blocks.
    #[schema(max_items = 200)]
    pub blocks: Vec<Block>,
}

/// One block of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    /// A heading.
    Heading {
        /// 1 to 200 characters.
        #[schema(min_length = 1, max_length = 200, example = "What we do")]
        text: String,
        /// 1 (largest) to 3; 2 when absent.
        #[serde(default = "default_level")]
        #[schema(minimum = 1, maximum = 3, default = 2)]
        level: u8,
    },
    /// A paragraph of text; line breaks are kept.
    Text {
        /// 1 to 10,000 characters.
        #[schema(min_length = 1, max_length = 10000)]
        text: String,
    },
    /// An image.
    Image {
        /// An `http://` or `https://` URL, or a path from `/`.
        #[schema(max_length = 2048, example = "https://example.com/team.png")]
        src: String,
        /// What it shows, for readers that do not see it: 0 to 300 characters.
        #[schema(max_length = 300, example = "Our team")]
        alt: String,
    },
    /// A link.
    Link {
        /// An `http://`, `https://` or `mailto:` URL, or a path from `/`.
        #[schema(max_length = 2048, example = "mailto:hello@example.com")]
        href: String,
        /// 1 to 200 characters.
        #[schema(min_length = 1, max_length = 200, example = "Write to us")]
        text: String,
    },
}

/// A heading's level when none is given.
const fn default_level() -> u8 {
    2
}

/// What is wrong with the pages, at a JSON pointer below the pages
/// (`/pages/0/blocks/2/src`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    /// The JSON pointer of the bad value.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// Reads `value` (the `pages` of a request or of a stored site) as pages,
/// with every error found, each at its pointer under `at` (e.g. `/pages`).
pub fn parse_pages(value: &Value, at: &str) -> Result<Vec<Page>, Vec<PageError>> {
    let mut errors = Vec::new();
    let Value::Array(items) = value else {
        return Err(vec![error(at, "must be an array of pages")]);
    };
    if items.len() > MAX_PAGES {
        return Err(vec![error(at, &format!("holds {} pages: a site has at most {MAX_PAGES}", items.len()))]);
    }
    let mut pages = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = format!("{at}/{index}");
        if let Some(page) = parse_page(item, &at, &mut errors) {
            if pages.iter().any(|p: &Page| p.slug == page.slug) {
                errors.push(error(&format!("{at}/slug"), "is the slug of an earlier page: slugs are unique"));
            }
            pages.push(page);
        }
    }
    if errors.is_empty() { Ok(pages) } else { Err(errors) }
}

/// Checks a site's name: 1 to 200 characters, not only spaces.
pub fn check_name(name: &str) -> Result<(), String> {
    bounded_text(name, 1, MAX_TITLE_CHARS)
}

fn parse_page(value: &Value, at: &str, errors: &mut Vec<PageError>) -> Option<Page> {
    let Value::Object(object) = value else {
        errors.push(error(at, "must be a page object: {\"slug\", \"title\", \"blocks\"}"));
        return None;
    };
    let before = errors.len();
    unknown_fields(object, &["slug", "title", "blocks"], at, errors);
    let slug = string(object, "slug", at, errors).and_then(|slug| {
        check(slug_rule(slug), &format!("{at}/slug"), errors)?;
        Some(slug.to_owned())
    });
    let title = string(object, "title", at, errors).and_then(|title| {
        check(bounded_text(title, 1, MAX_TITLE_CHARS), &format!("{at}/title"), errors)?;
        Some(title.to_owned())
    });
    let blocks = match object.get("blocks") {
        Some(Value::Array(items)) if items.len() > MAX_BLOCKS => {
            errors.push(error(&format!("{at}/blocks"), &format!("holds {} blocks: at most {MAX_BLOCKS}", items.len())));
            None
        }
        Some(Value::Array(items)) => {
            let blocks: Vec<Option<Block>> = items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_block(item, &format!("{at}/blocks/{index}"), errors))
                .collect();
            blocks.into_iter().collect::<Option<Vec<_>>>()
        }
        None | Some(Value::Null) => {
            errors.push(error(&format!("{at}/blocks"), "is required (an empty page has [])"));
            None
        }
        Some(_) => {
            errors.push(error(&format!("{at}/blocks"), "must be an array of blocks"));
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Page { slug: slug?, title: title?, blocks: blocks? })
}

fn parse_block(value: &Value, at: &str, errors: &mut Vec<PageError>) -> Option<Block> {
    let Value::Object(object) = value else {
        errors.push(error(at, "must be a block object with a `type`"));
        return None;
    };
    let before = errors.len();
    let kind = string(object, "type", at, errors)?;
    let text = |errors: &mut Vec<PageError>, name: &str, min: usize, max: usize| {
        let value = string(object, name, at, errors)?;
        check(bounded_text(value, min, max), &format!("{at}/{name}"), errors)?;
        Some(value.to_owned())
    };
    let url = |errors: &mut Vec<PageError>, name: &str, mailto: bool| {
        let value = string(object, name, at, errors)?;
        check(url_rule(value, mailto), &format!("{at}/{name}"), errors)?;
        Some(value.to_owned())
    };
    let block = match kind {
        "heading" => {
            unknown_fields(object, &["type", "text", "level"], at, errors);
            let text = text(errors, "text", 1, MAX_TITLE_CHARS);
            let level = match object.get("level") {
                None | Some(Value::Null) => Some(default_level()),
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(level @ 1..=3) => Some(level as u8),
                    _ => {
                        errors.push(error(&format!("{at}/level"), "must be 1, 2 or 3"));
                        None
                    }
                },
                Some(_) => {
                    errors.push(error(&format!("{at}/level"), "must be 1, 2 or 3"));
                    None
                }
            };
            Some(Block::Heading { text: text?, level: level? })
        }
        "text" => {
            unknown_fields(object, &["type", "text"], at, errors);
            Some(Block::Text { text: text(errors, "text", 1, MAX_TEXT_CHARS)? })
        }
        "image" => {
            unknown_fields(object, &["type", "src", "alt"], at, errors);
            let src = url(errors, "src", false);
            let alt = text(errors, "alt", 0, MAX_ALT_CHARS);
            Some(Block::Image { src: src?, alt: alt? })
        }
        "link" => {
            unknown_fields(object, &["type", "href", "text"], at, errors);
            let href = url(errors, "href", true);
            let text = text(errors, "text", 1, MAX_TITLE_CHARS);
            Some(Block::Link { href: href?, text: text? })
        }
        _ => {
            errors.push(error(&format!("{at}/type"), "must be one of heading, text, image, link"));
            None
        }
    };
    if errors.len() > before { None } else { block }
}

fn string<'v>(object: &'v Map<String, Value>, name: &str, at: &str, errors: &mut Vec<PageError>) -> Option<&'v str> {
    match object.get(name) {
        Some(Value::String(value)) => Some(value),
        None | Some(Value::Null) => {
            errors.push(error(&format!("{at}/{name}"), "is required"));
            None
        }
        Some(_) => {
            errors.push(error(&format!("{at}/{name}"), "must be a string"));
            None
        }
    }
}

fn unknown_fields(object: &Map<String, Value>, known: &[&str], at: &str, errors: &mut Vec<PageError>) {
    for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
        errors.push(error(&format!("{at}/{name}"), "unknown field"));
    }
}

fn check(rule: Result<(), String>, at: &str, errors: &mut Vec<PageError>) -> Option<()> {
    rule.map_err(|message| errors.push(PageError { pointer: at.to_owned(), message })).ok()
}

fn error(at: &str, message: &str) -> PageError {
    PageError { pointer: at.to_owned(), message: message.to_owned() }
}

/// `min` to `max` characters, without control characters other than line
/// breaks and tabs; when `min` is 1, not only spaces.
fn bounded_text(text: &str, min: usize, max: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars < min || (min > 0 && text.trim().is_empty()) {
        return Err(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if chars > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err("must not hold control characters".to_owned());
    }
    Ok(())
}

fn slug_rule(slug: &str) -> Result<(), String> {
    let mut chars = slug.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && slug.len() <= MAX_SLUG_CHARS {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_SLUG_CHARS} lower-case letters, digits and '-', starting with a letter or digit"
        ))
    }
}

/// An absolute `http(s)` URL (or `mailto:` where allowed) with a host, or a
/// path from `/` (not `//`, which names another host); no spaces or control
/// characters. Anything else (`javascript:`, `data:`, …) is refused.
fn url_rule(url: &str, mailto: bool) -> Result<(), String> {
    let allowed =
        if mailto { "an http(s):// or mailto: URL, or a path from /" } else { "an http(s):// URL or a path from /" };
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must be {allowed}, without spaces"));
    }
    let lower = url.to_ascii_lowercase();
    let with_host = |rest: &str| !rest.is_empty() && !rest.starts_with(['/', '?', '#']);
    let ok = if let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) {
        with_host(rest)
    } else if let Some(rest) = lower.strip_prefix("mailto:") {
        mailto && rest.contains('@')
    } else {
        url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\")
    };
    if ok { Ok(()) } else { Err(format!("must be {allowed}")) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointers(value: Value) -> Vec<String> {
        parse_pages(&value, "/pages").err().unwrap_or_default().into_iter().map(|e| e.pointer).collect()
    }

    #[test]
    fn every_kind_of_block_reads() {
        let pages = parse_pages(
            &json!([{"slug": "home", "title": "Home", "blocks": [
                {"type": "heading", "text": "Hi", "level": 1},
                {"type": "heading", "text": "Default level"},
                {"type": "text", "text": "line one\nline two"},
                {"type": "image", "src": "https://example.com/a.png", "alt": ""},
                {"type": "link", "href": "mailto:a@example.com", "text": "Mail"},
                {"type": "link", "href": "/about", "text": "About"},
            ]}]),
            "/pages",
        );
        let blocks = &pages.expect("valid")[0].blocks;
        assert_eq!(blocks[0], Block::Heading { text: "Hi".into(), level: 1 });
        assert_eq!(blocks[1], Block::Heading { text: "Default level".into(), level: 2 });
        assert_eq!(blocks.len(), 6);
        let stored = serde_json::to_value(blocks).expect("serialise");
        assert_eq!(stored[3], json!({"type": "image", "src": "https://example.com/a.png", "alt": ""}));
    }

    #[test]
    fn every_error_at_its_pointer() {
        let got = pointers(json!([
            {"slug": "Home", "title": "", "blocks": [
                {"type": "heading", "text": "x", "level": 4},
                {"type": "image", "src": "javascript:alert(1)", "alt": "x"},
                {"type": "link", "href": "//evil.example", "text": "x"},
                {"type": "video", "src": "x"},
                {"type": "text", "text": "x", "style": "bold"},
                "not a block",
            ]},
            {"slug": "a", "title": "A", "blocks": []},
            {"slug": "a", "title": "Again", "blocks": []},
            {"slug": "b", "title": "B"},
        ]));
        assert_eq!(
            got,
            [
                "/pages/0/slug",
                "/pages/0/title",
                "/pages/0/blocks/0/level",
                "/pages/0/blocks/1/src",
                "/pages/0/blocks/2/href",
                "/pages/0/blocks/3/type",
                "/pages/0/blocks/4/style",
                "/pages/0/blocks/5",
                "/pages/2/slug",
                "/pages/3/blocks",
            ]
        );
    }

    #[test]
    fn urls() {
        for good in ["https://example.com", "http://example.com/a?b#c", "/about", "/"] {
            assert!(url_rule(good, false).is_ok(), "{good}");
        }
        assert!(url_rule("mailto:a@example.com", true).is_ok());
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,x",
            "//example.com",
            "/\\example.com",
            "https://",
            "https:///x",
            "example.com",
            "/a b",
            "mailto:a@example.com",
            "",
        ] {
            assert!(url_rule(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        let too_many: Vec<Value> =
            (0..=MAX_PAGES).map(|i| json!({"slug": format!("p{i}"), "title": "t", "blocks": []})).collect();
        assert_eq!(pointers(Value::Array(too_many)), ["/pages"]);
        assert_eq!(pointers(json!({})), ["/pages"]);
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(pointers(json!([{"slug": "a", "title": long, "blocks": []}])), ["/pages/0/title"]);
        assert!(check_name("  ").is_err());
        assert!(check_name("Acme").is_ok());
        assert!(check_name("a\u{0}b").is_err());
    }
}
