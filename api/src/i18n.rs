//! Problem titles in the caller's language, chosen from `Accept-Language`
//! (English, German, French, Spanish; English when nothing else fits).

use http::HeaderMap;

/// A language problem titles are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English, the fallback.
    #[default]
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

impl Lang {
    /// The best supported language of the request's `Accept-Language`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Self::negotiate)
            .unwrap_or_default()
    }

    /// Picks the highest-weighted supported language (RFC 9110 §12.5.4).
    pub fn negotiate(header: &str) -> Self {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let lang = match primary.as_str() {
                "en" => Lang::En,
                "de" => Lang::De,
                "fr" => Lang::Fr,
                "es" => Lang::Es,
                _ => continue,
            };
            if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map(|(_, lang)| lang).unwrap_or_default()
    }

    /// The `Content-Language` value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(Lang::negotiate("ja, fr;q=0.5, es;q=0.7"), Lang::Es);
        assert_eq!(Lang::negotiate("ja"), Lang::En);
        assert_eq!(Lang::negotiate("fr;q=0, de;q=0.1"), Lang::De);
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("FR-ca"), Lang::Fr);
    }
}
