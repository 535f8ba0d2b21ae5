//! The XML tree builder alone: refuses DTDs and unknown entities, bounds
//! depth and size, and never panics. Text it accepts must round-trip through
//! the tree walkers without blowing the stack.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(root) = cleannvr::onvif::xml::parse(data) {
        let _ = root.find("Body");
        let _ = root.find_all("ProbeMatch");
    }
});
