//! `player.html`: the offline player that travels with every export.
//!
//! One self-contained page (inline CSS and JavaScript, nothing fetched, a Content Security
//! Policy that forbids the network) that plays the package's videos from beside it, shows
//! the local date and time of the frame on screen with its zone abbreviation and offset,
//! steps frames, lists gaps, and checks every file's SHA-256 and the manifest's Ed25519
//! signature with the browser's WebCrypto once the user picks the package folder (a page
//! opened from `file://` cannot read its neighbours by itself).
//!
//! The manifest's exact bytes are embedded as base64: the page needs no file to show the
//! cameras, times and gaps, the signature is checked over exactly those bytes, and base64
//! cannot close the `<script>` element it sits in, whatever the manifest says.

use std::io::Write;
use std::path::Path;

use anyhow::{ensure, Context};
use base64::Engine;

/// Name of the player in an export directory.
pub const PLAYER: &str = "player.html";

/// The page, with [`SLOT`] where the manifest goes.
const TEMPLATE: &str = include_str!("player.html");

/// Placeholder in [`TEMPLATE`] for the base64 manifest.
const SLOT: &str = "@@MANIFEST_BASE64@@";

/// The page for a manifest: [`TEMPLATE`] with the manifest's bytes as base64.
pub fn render(manifest_json: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(manifest_json);
    TEMPLATE.replacen(SLOT, &b64, 1)
}

/// Writes `dir/player.html` for `manifest_json` (the exact bytes of `manifest.json`),
/// readable by the owner only like the rest of the export, fsynced.
pub fn write_player(dir: &Path, manifest_json: &[u8]) -> anyhow::Result<()> {
    ensure!(
        TEMPLATE.matches(SLOT).count() == 1,
        "player template must hold exactly one manifest slot"
    );
    let path = dir.join(PLAYER);
    let mut opts = std::fs::File::options();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(render(manifest_json).as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_embedded_as_base64_and_cannot_break_out() {
        assert_eq!(TEMPLATE.matches(SLOT).count(), 1);
        let hostile = br#"{"reason":"</script><script>alert(1)</script>\u2028"}"#;
        let page = render(hostile);
        assert!(!page.contains(SLOT));
        assert!(
            !page.contains("alert(1)"),
            "manifest text leaked into the page"
        );
        assert_eq!(
            page.matches("</script>").count(),
            TEMPLATE.matches("</script>").count()
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(hostile);
        assert!(page.contains(&b64));
    }

    #[test]
    fn page_fetches_nothing() {
        // The page must work offline from a USB stick: no URL to anywhere, and a CSP that
        // forbids connections even if a future edit adds one.
        for bad in [
            "http:",
            "https:",
            "//cdn",
            "@import",
            "url(",
            "fetch(",
            "XMLHttpRequest",
        ] {
            assert!(!TEMPLATE.contains(bad), "template contains {bad:?}");
        }
        assert!(TEMPLATE.contains("default-src 'none'"));
    }

    #[test]
    fn written_owner_only() {
        let d = tempfile::tempdir().unwrap();
        write_player(d.path(), b"{}\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join(PLAYER))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_player(d.path(), b"{}\n").is_err(), "never overwrites");
    }
}
