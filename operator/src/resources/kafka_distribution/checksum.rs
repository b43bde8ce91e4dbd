//! SHA-512 values as the spec and checksum files write them.
//!
//! Apache publishes `<archive>.sha512` as `gpg --print-md SHA512` prints it:
//! the file name, a colon, and the hash in uppercase groups of eight hex
//! digits, wrapped over several lines:
//!
//! ```text
//! kafka_2.13-4.1.1.tgz: 1C4C2EA6 0E3F3D8F 0C1B7E3C 6A0A7E52 3F3A9E56 4B3C2D1E
//!                       ...
//! ```
//!
//! A copy someone made with `sha512sum` reads `<hex>  <file>` instead; both
//! are taken, as are BSD's `SHA512 (<file>) = <hex>` and a bare hash.

/// Hex digits of a SHA-512.
const HEX_DIGITS: usize = 128;

/// Whether `text` is a SHA-512 in hex, either case.
pub(super) fn is_sha512_hex(text: &str) -> bool {
    text.len() == HEX_DIGITS && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first hex digits of a hash, enough to tell two apart in plan text.
pub(super) fn abbreviated(sha512: &str) -> String {
    format!("{}…", &sha512[..sha512.len().min(16)])
}

/// The lowercase SHA-512 a checksum file gives for `file_name`, or why it
/// gives none.
pub(super) fn parse_checksum_file(text: &str, file_name: &str) -> Result<String, String> {
    let text = text.trim();
    if is_sha512_hex(text) {
        return Ok(text.to_ascii_lowercase());
    }
    let mut named = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        // `sha512sum`: `<hex>  <file>`, or `<hex> *<file>` in binary mode.
        if let Some((hash, name)) = line.split_once(char::is_whitespace)
            && is_sha512_hex(hash)
        {
            named.push((name.trim().trim_start_matches('*').to_owned(), hash.to_owned()));
        }
        // BSD: `SHA512 (<file>) = <hex>`.
        if let Some(rest) = line.strip_prefix("SHA512 (")
            && let Some((name, hash)) = rest.split_once(") = ")
            && is_sha512_hex(hash.trim())
        {
            named.push((name.to_owned(), hash.trim().to_owned()));
        }
    }
    if named.is_empty() {
        // Apache's: everything after the first colon is the hash, in groups.
        if let Some((name, groups)) = text.split_once(':') {
            let hash: String = groups.split_whitespace().collect();
            if is_sha512_hex(&hash) {
                named.push((name.trim().to_owned(), hash));
            }
        }
    }
    if named.is_empty() {
        return Err(
            "it holds no SHA-512 in a known format (Apache's `<file>: <hex groups>` \
                    or sha512sum's `<hex>  <file>`)"
                .to_owned(),
        );
    }
    named
        .iter()
        .find(|(name, _)| base_name(name) == file_name)
        .map(|(_, hash)| hash.to_ascii_lowercase())
        .ok_or_else(|| {
            let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
            format!(
                "it gives the SHA-512 of {} but not of {file_name}",
                names.join(", ")
            )
        })
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "kafka_2.13-4.1.1.tgz";

    fn sample_hash() -> String {
        (0..HEX_DIGITS)
            .map(|i| b"0123456789abcdef"[(i * 7) % 16] as char)
            .collect()
    }

    /// What `gpg --print-md SHA512` writes: uppercase groups of eight,
    /// wrapped and indented under the hash's start.
    fn apache_format(hash: &str) -> String {
        let groups: Vec<String> = hash
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(8)
            .map(|group| String::from_utf8(group.to_vec()).unwrap())
            .collect();
        let indent = " ".repeat(FILE.len() + 2);
        let lines: Vec<String> = groups.chunks(6).map(|line| line.join(" ")).collect();
        format!("{FILE}: {}\n", lines.join(&format!("\n{indent}")))
    }

    #[test]
    fn apaches_wrapped_uppercase_groups_give_the_lowercase_hash() {
        let hash = sample_hash();
        let published = apache_format(&hash);
        assert!(published.lines().count() > 2, "{published}");
        assert_eq!(parse_checksum_file(&published, FILE).unwrap(), hash);
    }

    #[test]
    fn sha512sum_bsd_and_bare_hashes_are_taken() {
        let hash = sample_hash();
        let upper = hash.to_ascii_uppercase();
        for text in [
            format!("{hash}  {FILE}\n"),
            format!("{hash} *{FILE}\n"),
            format!("{hash}  ./dist/{FILE}\n"),
            format!("{}  other.tgz\n{hash}  {FILE}\n", "0".repeat(128)),
            format!("SHA512 ({FILE}) = {hash}\n"),
            format!("{upper}\n"),
        ] {
            assert_eq!(
                parse_checksum_file(&text, FILE).as_deref(),
                Ok(hash.as_str()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_file_for_another_archive_or_without_a_hash_is_refused_saying_why() {
        let hash = sample_hash();
        let other = parse_checksum_file(&format!("{hash}  kafka_2.13-4.0.0.tgz\n"), FILE).unwrap_err();
        assert!(
            other.contains("kafka_2.13-4.0.0.tgz") && other.contains(FILE),
            "{other}"
        );
        let apache_other = parse_checksum_file(&apache_format(&hash).replace("4.1.1", "4.0.0"), FILE);
        assert!(apache_other.is_err());

        let truncated = format!("{FILE}: {}", &hash[..100]);
        for text in ["", "<html>Not Found</html>", truncated.as_str()] {
            let err = parse_checksum_file(text, FILE).unwrap_err();
            assert!(err.contains("no SHA-512 in a known format"), "{text}: {err}");
        }
    }

    #[test]
    fn hashes_are_128_hex_digits_and_shown_by_their_start() {
        assert!(is_sha512_hex(&sample_hash()) && is_sha512_hex(&sample_hash().to_ascii_uppercase()));
        assert!(!is_sha512_hex(&sample_hash()[1..]) && !is_sha512_hex(&"g".repeat(128)));
        assert_eq!(abbreviated(&sample_hash()), format!("{}…", &sample_hash()[..16]));
    }
}
