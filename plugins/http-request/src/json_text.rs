//! JSON text for the step's output body, written straight from the response
//! instead of through a `serde_json::Value`: bodies can be megabytes, and
//! serde_json escapes strings a byte at a time, which in a wasm guest costs
//! tens of instructions per byte. Here runs of bytes that need no escaping
//! are skipped eight at a time.

use serde_json::value::RawValue;

/// `text` as a JSON string literal, escaped exactly as serde_json writes it:
/// `"` and `\` with a backslash, `\b \f \n \r \t`, other control characters
/// as `\u00XX`; everything else as is.
pub(crate) fn string_literal(text: &str) -> Box<RawValue> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !any_needs_escape(word) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        if needs_escape(byte) {
            // `at` is an ASCII byte, so both slices end on character boundaries.
            out.push_str(&text[copied..at]);
            push_escape(&mut out, byte);
            copied = at + 1;
        }
        at += 1;
    }
    out.push_str(&text[copied..]);
    out.push('"');
    // `from_string` checks the literal once more (the only safe way to make
    // a `RawValue`); that scan is a fraction of serde_json's escaping.
    RawValue::from_string(out).expect("an escaped string literal is JSON")
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any of the eight bytes of `word` needs escaping: one below 0x20,
/// a `"` or a `\` (the has-zero-byte and has-less-than tests on words).
fn any_needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 0xff;
    const HIGH: u64 = ONES * 0x80;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        _ => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value that can start or sit in text, at every offset of
    /// an eight-byte word and across word boundaries, escapes as serde_json
    /// escapes it.
    #[test]
    fn escapes_exactly_as_serde_json() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain ascii text that is longer than a word".into(),
            "é漢字🦀 and \u{7f} and \u{2028}".into(),
            "\"quoted\" \\back\\slash/".into(),
        ];
        for c in (0u8..0x80).map(char::from).chain(['é', '漢', '🦀']) {
            for offset in 0..17 {
                let mut s = "x".repeat(offset);
                s.push(c);
                s.push_str(&"y".repeat(17 - offset));
                samples.push(s);
            }
        }
        samples.push((0u8..0x80).map(char::from).cycle().take(1000).collect());
        for s in &samples {
            assert_eq!(
                string_literal(s).get(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_word_test_finds_exactly_the_bytes_that_need_escaping() {
        for byte in 0..=u8::MAX {
            for lane in 0..8 {
                let mut word = [b'a'; 8];
                word[lane] = byte;
                assert_eq!(
                    any_needs_escape(u64::from_le_bytes(word)),
                    needs_escape(byte),
                    "{byte:#x} in lane {lane}"
                );
            }
        }
    }
}
