//! Any bytes a camera or a WS-Discovery responder sends: every SOAP reply
//! parser and the ProbeMatch parser must return, never panic, within the
//! XML limits (1 MiB, depth 64, 50k elements).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cleannvr::onvif::parse_any(data);
});
