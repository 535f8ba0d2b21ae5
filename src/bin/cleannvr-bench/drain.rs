//! A recorder that records nothing: retina RTSP clients that read each
//! stream and count its frames. It is the floor of the zero-loss figure —
//! what the synthetic camera, loopback TCP and RTP depacketizing alone
//! sustain — so a limit can be told apart from the recorder's.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use futures::StreamExt;
use retina::client::{self, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::CodecItem;

/// Body of the hidden `drain` subcommand: reads `urls` until SIGINT or
/// SIGTERM, touching `<dir>/camI.started` at stream I's first frame, then
/// writes the per-stream frame counts to `<dir>/frames.json`.
pub fn run(dir: &Path, urls: &[String]) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let counts: Arc<Vec<AtomicU64>> = Arc::new(urls.iter().map(|_| AtomicU64::new(0)).collect());
    rt.block_on(async {
        for (i, url) in urls.iter().enumerate() {
            let url = url::Url::parse(url)?;
            let counts = counts.clone();
            let started = dir.join(format!("cam{}.started", i + 1));
            tokio::spawn(async move {
                let r: anyhow::Result<()> = async {
                    let mut s = client::Session::describe(url, SessionOptions::default()).await?;
                    s.setup(
                        0,
                        SetupOptions::default()
                            .transport(client::Transport::Tcp(Default::default())),
                    )
                    .await?;
                    let mut playing = s.play(PlayOptions::default()).await?.demuxed()?;
                    while let Some(item) = playing.next().await {
                        if let CodecItem::VideoFrame(_) = item? {
                            if counts[i].fetch_add(1, Relaxed) == 0 {
                                std::fs::write(&started, b"")?;
                            }
                        }
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = r {
                    eprintln!("cam{}: {e:#}", i + 1);
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    let frames: Vec<u64> = counts.iter().map(|c| c.load(Relaxed)).collect();
    std::fs::write(dir.join("frames.json"), serde_json::to_vec(&frames)?)?;
    rt.shutdown_background();
    Ok(())
}
