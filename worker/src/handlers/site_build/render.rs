//! A page rendered to a static HTML document. Every string that comes from
//! the site (its name, a page's title, the blocks' texts, URLs and
//! descriptions) goes through [`escape`]: nothing a user wrote can open a
//! tag, close an attribute or start a script. URLs are also checked by the
//! page rules (`xentri_core::site::page`) before a build renders them.

use std::fmt::Write;

use xentri_core::site::page::{Block, Page};

/// `text` with the five characters that mean something in HTML text or a
/// quoted attribute replaced by their character references.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Page `page` of the site named `site_name`, as a whole HTML document.
pub fn page(site_name: &str, page: &Page) -> String {
    let mut html = String::with_capacity(512);
    html.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(html, "<title>{} · {}</title>", escape(&page.title), escape(site_name));
    html.push_str("</head>\n<body>\n<main>\n");
    for block in &page.blocks {
        block_html(&mut html, block);
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

fn block_html(html: &mut String, block: &Block) {
    // Writing to a String cannot fail.
    let _ = match block {
        Block::Heading { text, level } => {
            let level = (*level).clamp(1, 3);
            writeln!(html, "<h{level}>{}</h{level}>", escape(text))
        }
        Block::Text { text } => {
            let lines: Vec<String> = text.lines().map(escape).collect();
            writeln!(html, "<p>{}</p>", lines.join("<br>\n"))
        }
        Block::Image { src, alt } => writeln!(html, "<img src=\"{}\" alt=\"{}\">", escape(src), escape(alt)),
        Block::Link { href, text } => {
            writeln!(html, "<p><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></p>", escape(href), escape(text))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
    }

    #[test]
    fn a_page_with_every_block_and_hostile_strings() {
        let page = Page {
            slug: "home".into(),
            title: "Home</title><script>alert(1)</script>".into(),
            blocks: vec![
                Block::Heading { text: "<script>alert('h')</script>".into(), level: 1 },
                Block::Text { text: "one & two\n<b>three</b>".into() },
                Block::Image {
                    src: "https://example.com/a.png?x=\"onerror=alert(1)".into(),
                    alt: "\" onload=\"x".into(),
                },
                Block::Link { href: "/about?a=1&b=2".into(), text: "About <us>".into() },
            ],
        };
        let html = super::page("Acme & Co", &page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("\" onload"), "{html}");
        assert!(!html.contains("\"onerror"), "{html}");
        for expected in [
            "<title>Home&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; · Acme &amp; Co</title>",
            "<h1>&lt;script&gt;alert(&#39;h&#39;)&lt;/script&gt;</h1>",
            "<p>one &amp; two<br>\n&lt;b&gt;three&lt;/b&gt;</p>",
            "<img src=\"https://example.com/a.png?x=&quot;onerror=alert(1)\" alt=\"&quot; onload=&quot;x\">",
            "<p><a href=\"/about?a=1&amp;b=2\" rel=\"noopener noreferrer\">About &lt;us&gt;</a></p>",
        ] {
            assert!(html.contains(expected), "expected {expected} in\n{html}");
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
    }
}
