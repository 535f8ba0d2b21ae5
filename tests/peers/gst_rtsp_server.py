#!/usr/bin/python3
"""Third-party RTSP peer for cleannvr's end-to-end tests: GStreamer's gst-rtsp-server.

Run with Debian's /usr/bin/python3 (it needs python3-gi). Serves on 127.0.0.1 only:
  /h264aac   live H.264 (Main, key frame every second) + AAC 48 kHz
  /h264pcmu  live H.264 + G.711 mu-law 8 kHz
  /h264pcma  live H.264 + G.711 A-law 8 kHz
  /h264l16   live H.264 + L16 (linear PCM) 8 kHz, audio cleannvr does not record
  /h265aac   live H.265 + AAC 48 kHz
  /h264big   live H.264 only, 1280x720 noise at 4 Mbit/s: most RTP packets are
             FU-A fragments
  /h264frag  live H.264 only, 640x360 noise at 1.2 Mbit/s in 500-byte packets:
             most RTP packets are FU-A fragments, at a quarter of the CPU and
             bandwidth of /h264big (for tests that join mid-frame, not for load)
  /h264slices live H.264 only, 1280x720 still noise and a clock at 1 Mbit/s, 4 slices
             per picture:
             key frames span many FU-A packets in several slice NALs
  /vp8       live VP8: a codec cleannvr does not record
  /avsync    live H.264 320x180 + AAC 48 kHz with events to align: at every
             even second of the media's time the picture flips between black
             and grey, and the sound between a 1 kHz tone (while grey) and
             silence
Every mount is shared: a second client joins the running stream.
--udp-only limits every mount to RTP over UDP, so a TCP SETUP gets 461.
--port 0 lets the kernel pick a free port (no window in which another test can
take a port found free beforehand). Prints "ready <port>" with the port it
listens on once listening.
"""
import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstController", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstController, GstRtsp, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--port", required=True)
parser.add_argument("--user")
parser.add_argument("--password")
parser.add_argument("--auth", choices=["basic", "digest"], default="digest")
parser.add_argument("--udp-only", action="store_true")
args = parser.parse_args()

Gst.init(None)

video = (
    "videotestsrc is-live=true pattern=ball ! "
    "video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! timeoverlay ! "
)
h264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=600 ! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=-1 "
h265 = "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=600 ! rtph265pay name=pay0 pt=96 config-interval=-1 "
tone = "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
aac = tone + "audio/x-raw,rate=48000,channels=1 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
pcmu = tone + "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0"
pcma = tone + "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8"
l16 = tone + "audio/x-raw,format=S16BE,rate=8000,channels=1 ! rtpL16pay name=pay1 pt=98"

big = (
    "videotestsrc is-live=true pattern=snow ! "
    "video/x-raw,format=I420,width=1280,height=720,framerate=25/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=4000 ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1 mtu=1200 "
)
frag = (
    "videotestsrc is-live=true pattern=snow ! "
    "video/x-raw,format=I420,width=640,height=360,framerate=25/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=1200 ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1 mtu=500 "
)
# Big key frames in many slices: one still frame of noise at 1280x720 with a
# running clock gives small P-frames and key frames of tens of kilobytes, cut
# into 4 slices (each its own run of FU-A packets), so a client whose first
# packets are missing starts mid-NAL or at a slice that is not the first of
# its picture. (Noise in every frame, as in /h264big, overflowed UDP receive
# buffers on a loaded machine.)
slices = (
    "videotestsrc pattern=snow num-buffers=1 ! "
    "video/x-raw,format=I420,width=1280,height=720,framerate=25/1 ! "
    "imagefreeze is-live=true ! timeoverlay font-desc=\"Sans 48\" ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=1000 "
    "sliced-threads=true threads=4 ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1 mtu=1000 "
)
vp8 = video + "vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96 "
# A/V alignment: `flash` (videobalance) and `beep` (volume) get square waves
# in `on_configure`, switching at every even second of buffer time. Both
# elements apply control values by buffer timestamps (volume per sample), so
# the picture and the sound switch at the same instant of the media's time.
avsync = (
    "videotestsrc is-live=true pattern=black ! "
    "video/x-raw,format=I420,width=320,height=180,framerate=25/1 ! videobalance name=flash ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=200 ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1 "
    "audiotestsrc is-live=true freq=1000 ! audio/x-raw,rate=48000,channels=1 ! "
    "volume name=beep ! audioconvert ! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
)

mounts = {
    "/h264aac": video + h264 + aac,
    "/h264pcmu": video + h264 + pcmu,
    "/h264pcma": video + h264 + pcma,
    "/h264l16": video + h264 + l16,
    "/h265aac": video + h265 + aac,
    "/h264big": big,
    "/h264frag": frag,
    "/h264slices": slices,
    "/vp8": vp8,
    "/avsync": avsync,
}


def square(amplitude, offset):
    """A control source switching between offset ± amplitude every 2 s."""
    wave = GstController.LFOControlSource()
    wave.set_property("waveform", GstController.LFOWaveform.SQUARE)
    wave.set_property("frequency", 0.25)
    wave.set_property("amplitude", amplitude)
    wave.set_property("offset", offset)
    return wave


def on_configure(_factory, media):
    """Binds /avsync's brightness and volume to the same square wave."""
    flash = media.get_element().get_by_name("flash")
    beep = media.get_element().get_by_name("beep")
    if flash is None or beep is None:
        return
    # Control values map onto the property's range: 0.25 / 0.75 to brightness
    # -0.5 / +0.5 (of -1..1), 0.08 / 0 to volume 0.8 / 0 (of 0..10).
    flash.add_control_binding(
        GstController.DirectControlBinding.new(flash, "brightness", square(0.25, 0.5))
    )
    beep.add_control_binding(
        GstController.DirectControlBinding.new(beep, "volume", square(0.04, 0.04))
    )


server = GstRtspServer.RTSPServer(address="127.0.0.1", service=args.port)
if args.user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", args.user)
    if args.auth == "basic":
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    else:
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    server.set_auth(auth)

for path, launch in mounts.items():
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + " )")
    factory.set_shared(True)
    factory.connect("media-configure", on_configure)
    if args.udp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    if args.user:
        perms = Gst.Structure.from_string(
            f"{args.user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )[0]
        factory.add_role_from_structure(perms)
    server.get_mount_points().add_factory(path, factory)

if server.attach(None) == 0:
    raise SystemExit(f"cannot listen on 127.0.0.1:{args.port}")
print(f"ready {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
