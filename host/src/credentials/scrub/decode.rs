//! Decoded views: what a conformant decoder turns bytes into, with a map from
//! every decoded byte back to the bytes it came from, so a secret found in
//! the decoded text is removed from the original without touching anything
//! around it.
//!
//! Three encodings are decoded, one at a time (decoding two at once would
//! misread text that is only one of them: `\\%20` is a backslash and a
//! space to a percent decoder): JSON string escapes (`\/`, `\n`, `\uXXXX` in
//! either case, surrogate pairs), percent-encoding (`%2b`, `%2B`) and XML/HTML
//! character references (every HTML5 named reference, decimal and hex
//! numeric references, and the four ASCII ones HTML also accepts without the
//! `;`). `+` for space is left to the matcher (`Matcher::plus_for_space`).

use std::ops::Range;

use memchr::memchr;

/// A stretch of a view that did not come one for one from its source: an
/// escape, or (in a JSON strings view) the separator that stands for the
/// bytes between two strings.
#[derive(Clone, Copy, Debug)]
struct Unit {
    /// Where it starts in the view.
    out: u32,
    /// How many view bytes it produced.
    out_len: u32,
    /// Where its source starts.
    src: u32,
    /// How many source bytes it stands for.
    src_len: u32,
}

/// Maps view positions to source positions. Bytes between units were copied
/// one for one, so only the units are stored.
#[derive(Debug, Default)]
pub(super) struct Map {
    units: Vec<Unit>,
}

impl Map {
    /// The source range a non-empty view range came from, widened to whole
    /// units: a match that touches part of an escape takes all of it.
    pub(super) fn source(&self, view: Range<usize>) -> Range<usize> {
        self.locate(view.start).start..self.locate(view.end - 1).end
    }

    /// The source range of one view byte.
    fn locate(&self, pos: usize) -> Range<usize> {
        let after = self.units.partition_point(|u| u.out as usize <= pos);
        let Some(u) = after.checked_sub(1).map(|i| self.units[i]) else {
            return pos..pos + 1;
        };
        let (out_end, src_end) = ((u.out + u.out_len) as usize, (u.src + u.src_len) as usize);
        if pos < out_end {
            u.src as usize..src_end
        } else {
            let src = src_end + (pos - out_end);
            src..src + 1
        }
    }

    fn push(&mut self, out: usize, out_len: usize, src: usize, src_len: usize) {
        self.units.push(Unit {
            out: out as u32,
            out_len: out_len as u32,
            src: src as u32,
            src_len: src_len as u32,
        });
    }
}

/// Decoded bytes and the map back to their source.
pub(super) struct View {
    pub(super) bytes: Vec<u8>,
    pub(super) map: Map,
}

/// An encoding that escapes characters, each escape introduced by one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Escapes {
    /// JSON string escapes (RFC 8259 §7).
    Json,
    /// Percent-encoding (RFC 3986 §2.1), either hex case.
    Percent,
    /// XML/HTML character references.
    Html,
    /// Only the escapes a URL serializer adds to text it parses (the WHATWG
    /// percent-encode sets: controls, space, `"`, `#`, `'`, `<`, `>`,
    /// `` ` ``, `{`, `}`, DEL and non-ASCII bytes); any other `%XX` stays as
    /// written. A secret holding both `<` and a literal `%6d` comes out of a
    /// parsed `Location` as `%3C…%6d`: neither as it was nor fully decoded.
    UrlSerialized,
}

impl Escapes {
    /// Every encoding, in the order they are tried.
    pub(super) const ALL: [Self; 3] = [Self::Json, Self::Percent, Self::Html];

    fn introducer(self) -> u8 {
        match self {
            Self::Json => b'\\',
            Self::Percent | Self::UrlSerialized => b'%',
            Self::Html => b'&',
        }
    }

    /// Decodes the escape at the start of `s` into `out`, returning how many
    /// bytes of `s` it took; `None` (nothing written) if none starts there.
    fn decode_at(self, s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        match self {
            Self::Json => json_escape(s, out),
            Self::Percent => {
                let byte = hex_value(s.get(1..3)?)?;
                out.push(byte as u8);
                Some(3)
            }
            Self::Html => character_reference(s, out),
            Self::UrlSerialized => {
                let byte = hex_value(s.get(1..3)?)? as u8;
                let added = matches!(
                    byte,
                    0..=0x20 | b'"' | b'#' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'}' | 0x7f..
                );
                added.then(|| out.push(byte)).map(|()| 3)
            }
        }
    }
}

/// Decodes every escape of one encoding in `input`; `None` when there is
/// none, so the caller can stop. Positions are `u32`: bodies are capped far
/// below 4 GiB.
pub(super) fn decode(input: &[u8], escapes: Escapes) -> Option<View> {
    let introducer = escapes.introducer();
    let mut bytes = Vec::new();
    let mut map = Map::default();
    let (mut at, mut copied) = (0, 0);
    while let Some(found) = memchr(introducer, &input[at..]) {
        let start = at + found;
        if bytes.capacity() == 0 {
            bytes.reserve(input.len());
        }
        bytes.extend_from_slice(&input[copied..start]);
        copied = start;
        let out = bytes.len();
        match escapes.decode_at(&input[start..], &mut bytes) {
            Some(len) => {
                map.push(out, bytes.len() - out, start, len);
                at = start + len;
                copied = at;
            }
            None => at = start + 1,
        }
    }
    if map.units.is_empty() {
        return None;
    }
    bytes.extend_from_slice(&input[copied..]);
    Some(View { bytes, map })
}

/// A JSON string escape (RFC 8259 §7).
fn json_escape(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let simple = match *s.get(1)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let unit = hex_value(s.get(2..6)?)?;
            let (c, len) = match unit {
                0xD800..=0xDBFF => {
                    let low = s
                        .get(6..8)
                        .filter(|p| *p == b"\\u")
                        .and_then(|_| hex_value(s.get(8..12)?))
                        .filter(|l| (0xDC00..=0xDFFF).contains(l))?;
                    let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    (char::from_u32(c)?, 12)
                }
                _ => (char::from_u32(unit)?, 6),
            };
            push_char(c, out);
            return Some(len);
        }
        _ => return None,
    };
    out.push(simple);
    Some(2)
}

/// An XML/HTML character reference: `&#43;`, `&#x2B;`, `&plus;` (the `;` is
/// optional for numeric references and for `amp`, `lt`, `gt` and `quot`, as
/// HTML decoders accept them).
fn character_reference(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if s.get(1) == Some(&b'#') {
        let (radix, digits_at) = match s.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let digits = s[digits_at..]
            .iter()
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&s[digits_at..digits_at + digits]).ok()?;
        let c = u32::from_str_radix(text, radix)
            .ok()
            .filter(|&c| c != 0)
            .and_then(char::from_u32)?;
        push_char(c, out);
        let end = digits_at + digits;
        return Some(end + usize::from(s.get(end) == Some(&b';')));
    }
    let name_len = s[1..]
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let name = std::str::from_utf8(&s[1..1 + name_len]).ok()?;
    if s.get(1 + name_len) == Some(&b';') {
        let text = quick_xml::escape::resolve_html5_entity(name)?;
        out.extend_from_slice(text.as_bytes());
        return Some(name_len + 2);
    }
    let c = match name {
        "amp" | "AMP" => b'&',
        "lt" | "LT" => b'<',
        "gt" | "GT" => b'>',
        "quot" | "QUOT" => b'"',
        _ => return None,
    };
    out.push(c);
    Some(name_len + 1)
}

fn push_char(c: char, out: &mut Vec<u8>) {
    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// The value of ASCII hex digits (either case), `None` if any is not one.
fn hex_value(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0, |acc, &b| Some(acc * 16 + (b as char).to_digit(16)?))
}

/// A valid JSON document's strings and numbers.
pub(super) struct JsonParts {
    /// The raw interiors of every string (keys and values), each preceded by
    /// a NUL that stands for the bytes before it; an escape is one unit, so
    /// a match touching part of it takes all of it. No secret contains NUL,
    /// so no match spans two strings.
    pub(super) strings: View,
    /// Where each number token is.
    pub(super) numbers: Vec<Range<usize>>,
}

/// Splits a document that is valid JSON (checked by the caller) into its
/// strings and numbers; everything else is structure and literals, which
/// scrubbing never touches.
pub(super) fn json_parts(doc: &[u8]) -> JsonParts {
    let mut strings = View {
        bytes: Vec::with_capacity(doc.len()),
        map: Map::default(),
    };
    let mut numbers = Vec::new();
    let (mut at, mut previous_end) = (0, 0);
    while at < doc.len() {
        match doc[at] {
            b'"' => {
                let start = at + 1;
                strings
                    .map
                    .push(strings.bytes.len(), 1, previous_end, start - previous_end);
                strings.bytes.push(0);
                let mut i = start;
                while doc[i] != b'"' {
                    if doc[i] == b'\\' {
                        let len = if doc[i + 1] == b'u' { 6 } else { 2 };
                        strings.map.push(strings.bytes.len(), len, i, len);
                        strings.bytes.extend_from_slice(&doc[i..i + len]);
                        i += len;
                    } else {
                        let run = memchr::memchr2(b'"', b'\\', &doc[i..]).unwrap_or(doc.len() - i);
                        strings.bytes.extend_from_slice(&doc[i..i + run]);
                        i += run;
                    }
                }
                previous_end = i;
                at = i + 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = doc[at..]
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
                numbers.push(at..at + len);
                at += len;
            }
            _ => at += 1,
        }
    }
    JsonParts { strings, numbers }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s` after each encoding's decoder in turn.
    fn decoded(s: &str) -> String {
        let mut bytes = s.as_bytes().to_vec();
        for escapes in Escapes::ALL {
            if let Some(view) = decode(&bytes, escapes) {
                bytes = view.bytes;
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn each_escape_decodes_and_maps_back_to_all_of_itself() {
        for (text, want) in [
            (r"a\/b", "a/b"),
            (r"\u002B\u002b", "++"),
            (r"\ud83d\ude00!", "😀!"),
            ("%2b%2F", "+/"),
            ("&amp;&#43;&#x2B;&#X2b;&plus;&sol;", "&++++/"),
            ("&amp &#43x", "& +x"),
            (
                r"\ud83d alone, %zz, &nosuch; &#0; \q",
                r"\ud83d alone, %zz, &nosuch; &#0; \q",
            ),
        ] {
            assert_eq!(decoded(text), want, "{text}");
        }
        let view = decode(b"ab\\u002Bcd", Escapes::Json).unwrap();
        assert_eq!(view.bytes, b"ab+cd");
        assert_eq!(view.map.source(2..3), 2..8);
        assert_eq!(view.map.source(0..2), 0..2);
        assert_eq!(view.map.source(3..5), 8..10);
        assert_eq!(view.map.source(1..4), 1..9);
    }

    #[test]
    fn json_parts_are_strings_and_numbers_only() {
        let doc = br#"{"k\"y": [12, -3.5e2, true, "v\u0041l"], "n": null}"#;
        let parts = json_parts(doc);
        assert_eq!(parts.strings.bytes, b"\0k\\\"y\0v\\u0041l\0n");
        let numbers: Vec<&[u8]> = parts.numbers.iter().map(|r| &doc[r.clone()]).collect();
        assert_eq!(numbers, [&b"12"[..], b"-3.5e2"]);
        // `v\u0041l` maps back to its place, the escape whole.
        let at = parts
            .strings
            .bytes
            .windows(2)
            .position(|w| w == b"v\\")
            .unwrap();
        let source = parts.strings.map.source(at + 1..at + 2);
        assert_eq!(&doc[source], br"\u0041");
        let source = parts.strings.map.source(at..at + 8);
        assert_eq!(&doc[source], br"v\u0041l");
    }
}
