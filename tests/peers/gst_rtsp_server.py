#!/usr/bin/python3
"""Third-party RTSP peer for cleannvr's end-to-end tests: GStreamer's gst-rtsp-server.

Run with Debian's /usr/bin/python3 (it needs python3-gi). Serves on 127.0.0.1 only:
  /h264aac   live H.264 (Main, key frame every second) + AAC 48 kHz
  /h264pcmu  live H.264 + G.711 mu-law 8 kHz
  /h264pcma  live H.264 + G.711 A-law 8 kHz
  /h264l16   live H.264 + L16 (linear PCM) 8 kHz, audio cleannvr does not record
  /h265aac   live H.265 + AAC 48 kHz
  /h265      live H.265 only (cleannvr's own RTP reassembly, not retina's)
  /h265meta  live H.265 + the ONVIF metadata track of /h264meta
  /h264aacgaps live H.264 + AAC 48 kHz whose sound stops every other 4 s of the
             media's time (a pad probe drops the AAC frames): a camera whose
             audio comes and goes while its picture goes on
  /h264big   live H.264 only, 1280x720 noise at 4 Mbit/s: most RTP packets are
             FU-A fragments
  /h264frag  live H.264 only, 640x360 noise at 1.2 Mbit/s in 500-byte packets:
             most RTP packets are FU-A fragments, at a quarter of the CPU and
             bandwidth of /h264big (for tests that join mid-frame, not for load)
  /h264slices live H.264 only, 1280x720 still noise and a clock at 1 Mbit/s, 4 slices
             per picture:
             key frames span many FU-A packets in several slice NALs
  /h264nokey live H.264 whose key frames are withheld: a pad probe drops every
             IDR access unit, so a client gets P-frames only (a camera joined
             after its one key frame, or with a key-frame interval of minutes).
             SIGUSR1 lets the next key frame through (one per signal); each
             dropped and each sent one is printed ("nokey ...")
  /vp8       live VP8: a codec cleannvr does not record
  /pcmu      live G.711 mu-law 8 kHz and nothing else (no video track)
  /aac       live AAC 48 kHz and nothing else (no video track)
  /avsync    live H.264 320x180 + AAC 48 kHz with events to align: at every
             even second of the media's time the picture flips between black
             and grey, and the sound between a 1 kHz tone (while grey) and
             silence
  /h264meta  live H.264 + an ONVIF metadata track (application/vnd.onvif.metadata,
             see meta_*): every 4 s motion starts (second 1) and ends (second 3),
             as a camera's tt:MetadataStream documents; between them a
             tt:VideoAnalytics frame document; each document goes out over
             several RTP packets, the marker bit on its last
  /h264metahostile  live H.264 + a metadata track that sends only hostile
             documents, each of them motion if it were read: one over 256 KiB,
             one with a billion-laughs DTD, one with an external entity; and
             between them a torn document (its first packet, then a new
             timestamp before the marker bit): an RTP depacketization error
             on the metadata stream only
  /h264metaendless  live H.264 + a metadata track that, every 25 s, is
             quiet for 6 s, then streams one document without end for 15 s
             (60 MB in 16 kB RTP packets that share one timestamp, never a
             marker bit; prints "meta endless start <path>", and "meta endless
             sent <path> <bytes>" when it stops), then a motion start (22 s) and end
             (24 s) as /h264meta's, each a whole document with a new timestamp
  /h264aacmetaendless  as /h264metaendless, with AAC 48 kHz sound beside
             the video (the metadata track is the third stream; a client may
             leave it unlinked: cleannvr does, for video with sound)
  /h264metanosetup  as /h264meta, but SETUP of the metadata stream is answered
             461 Unsupported Transport (the video SETUP and PLAY succeed), as a
             camera that announces a metadata track it cannot stream
Every mount is shared: a second client joins the running stream.
--udp-only limits every mount to RTP over UDP, so a TCP SETUP gets 461.
--port 0 lets the kernel pick a free port (no window in which another test can
take a port found free beforehand). Prints "ready <port>" with the port it
listens on once listening.
"""
import argparse
import datetime
import random
import signal
import struct
import time

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
aacgaps = aac.replace("avenc_aac !", "avenc_aac ! identity name=audiogate !")

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
# avc (length-prefixed) output: SPS and PPS travel in the caps' codec_data, so
# the SDP carries them (sprop-parameter-sets) although no key frame, with its
# in-band parameter sets, ever goes out until the test releases one.
nokey = (
    video
    + "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=600 ! "
    "video/x-h264,profile=main,stream-format=avc,alignment=au ! identity name=keygate ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1 "
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

# ONVIF metadata track (ONVIF Streaming Spec 5.2.1.1): XML documents over RTP,
# a document split over packets that share a timestamp, the marker bit on its
# last packet. Debian has no payloader for it (rtponvifmetadatapay is in
# gst-plugins-rs), so the RTP packets are built here and pushed through an
# appsrc named pay1; the RTSP server announces it from these caps.
meta = (
    "appsrc name=pay1 is-live=true format=time do-timestamp=true max-bytes=0 "
    'caps="application/x-rtp,media=application,encoding-name=VND.ONVIF.METADATA,'
    'clock-rate=90000,payload=107"'
)

# The same for a client that may not set the track up: GStreamer's RTSP
# server then leaves it unlinked, and an appsrc pushing into nothing stops
# the shared media; a tee that allows that keeps the media going. Third
# stream (pay2), after video and sound.
meta_unlinkable = (
    meta.replace("name=pay1", "name=metasrc") + " ! tee allow-not-linked=true ! identity name=pay2"
)

# An Axis camera's motion notification as captured off its metadata track
# (MAC prefix 00:40:8C; quoted in a public NVR's RTSP client source), with
# the time and state filled in.
META_MOTION = (
    '<?xml version="1.0" encoding="UTF-8"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">'
    '<tt:Event><wsnt:NotificationMessage xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa5="http://www.w3.org/2005/08/addressing">'
    '<wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">'
    "tns1:VideoSource/tns1:MotionAlarm</wsnt:Topic><wsnt:ProducerReference><wsa5:Address>"
    "uri://ce70a274-592e-11df-a812-00408cac51a7/ProducerReference</wsa5:Address></wsnt:ProducerReference>"
    '<wsnt:Message><tt:Message UtcTime="{utc}" PropertyOperation="{op}"><tt:Source>'
    '<tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data>'
    '<tt:SimpleItem Name="State" Value="{state}"/></tt:Data></tt:Message></wsnt:Message>'
    "</wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"
)
# A Dahua camera's analytics frame (an object's box, no event), as a public
# Dahua metadata collector's test fixture has it.
META_FRAME = (
    '<?xml version="1.0" encoding="utf-8" standalone="yes" ?>'
    '<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">'
    '<tt:VideoAnalytics><tt:Frame UtcTime="{utc}">'
    '<tt:Object ObjectId="0"><tt:Appearance><tt:Shape>'
    '<tt:BoundingBox left="656" top="64" right="2704" bottom="8144"/>'
    '<tt:CenterOfGravity x="1680" y="4104"/>'
    "</tt:Shape></tt:Appearance></tt:Object>"
    "</tt:Frame></tt:VideoAnalytics></tt:MetadataStream>"
)


def utc_now():
    """The camera's clock, as ONVIF writes it (UTC, milliseconds)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def motion(state, op="Changed"):
    utc = utc_now()
    return utc, META_MOTION.format(utc=utc, op=op, state=state)


def hostile_documents():
    """Documents that would be motion if a reader took them in."""
    _, big = motion("true")
    # Over the 256 KiB cap, still under the XML parser's 1 MiB: only the cap stops it.
    big = big.replace("<tt:Event>", "<!--" + "x" * (300 * 1024) + "--><tt:Event>")
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "true"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        + motion("&c;")[1].split("?>", 1)[1]
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>'
        + motion("true")[1].split("?>", 1)[1].replace("VideoSource_1", "&xxe;")
    )
    return [("huge", big), ("laughs", laughs), ("external-entity", external)]


class MetaTrack:
    """Feeds one media's metadata appsrc from a GLib timer."""

    def __init__(self, src, mode, path):
        self.src = src
        self.path = path
        self.hostile = mode == "hostile"
        self.seq = random.randrange(1 << 16)
        self.ssrc = random.randrange(1 << 32)
        self.start = time.monotonic()
        self.step = 0
        if mode == "endless":
            # 20 ms ticks, so the flood is spread out as a camera's would be.
            self.timer = GLib.timeout_add(20, self.tick_endless)
        else:
            self.timer = GLib.timeout_add(500, self.tick)

    def packet(self, payload, ts, mark=False):
        header = struct.pack("!BBHII", 0x80, (0x80 if mark else 0) | 107, self.seq, ts, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.src.emit("push-buffer", Gst.Buffer.new_wrapped(header + payload))

    def send(self, doc, chunk=1200, ts=None, torn=False):
        """Sends one document; `torn` stops after its first packet, without
        the marker bit. Returns the RTP timestamp used."""
        if ts is None:
            ts = int((time.monotonic() - self.start) * 90000) & 0xFFFFFFFF
        data = doc.encode()
        parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        if torn:
            parts = parts[:1]
        for i, part in enumerate(parts):
            self.packet(part, ts, mark=i == len(parts) - 1 and not torn)
        return ts

    def tick_endless(self):
        """/h264metaendless: 1250 ticks of 20 ms: 300 quiet (so a client's
        start-up is over), 750 of one document that never ends (5 packets
        of 16 kB a tick, one timestamp, no marker bit), then motion on and
        off as whole documents."""
        phase = self.step % 1250 - 300
        self.step += 1
        if phase < 0:
            return True
        if phase == 0:
            print(f"meta endless start {self.path}", flush=True)
            self.endless_ts = int((time.monotonic() - self.start) * 90000) & 0xFFFFFFFF
            head = META_FRAME.split("<tt:Object", 1)[0].format(utc=utc_now())
            self.packet(head.encode(), self.endless_ts)
            self.endless_sent = len(head)
        if phase < 750:
            filler = b'<tt:Object ObjectId="1"/>' * 640
            for _ in range(5):
                self.packet(filler, self.endless_ts)
                self.endless_sent += len(filler)
        elif phase == 750:
            print(f"meta endless sent {self.path} {self.endless_sent}", flush=True)
        elif phase in (800, 900):
            state = "true" if phase == 800 else "false"
            utc, doc = motion(state)
            self.send(doc)
            print(f"meta motion {state} {utc}", flush=True)
        return True

    def tick(self):
        # Every 4 s (8 ticks): motion on at 1 s, off at 3 s, analytics frames between.
        phase = self.step % 8
        self.step += 1
        if self.hostile:
            if phase % 2 == 0:
                kind, doc = hostile_documents()[(self.step // 2) % 3]
                self.send(doc)
                print(f"meta hostile {kind} {len(doc)}", flush=True)
            else:
                # A document cut off after its first packet, then a one-packet
                # document with the next timestamp: a depacketizer sees the
                # timestamp change mid-document, and the filler is lost with it.
                ts = self.send(motion("true")[1], chunk=200, torn=True)
                self.send(META_FRAME.format(utc=utc_now()), chunk=4096, ts=(ts + 1) & 0xFFFFFFFF)
                print("meta hostile torn", flush=True)
            return True
        if self.step == 1:
            self.send(motion("false", "Initialized")[1])
        elif phase == 2:
            utc, doc = motion("true")
            self.send(doc)
            print(f"meta motion true {utc}", flush=True)
        elif phase == 6:
            utc, doc = motion("false")
            self.send(doc)
            print(f"meta motion false {utc}", flush=True)
        elif phase in (0, 4):
            self.send(META_FRAME.format(utc=utc_now()))
        return True

    def stop(self, *_):
        GLib.source_remove(self.timer)


class KeyGate:
    """Drops key frames (buffers without DELTA_UNIT: x264's IDR access units)
    on /h264nokey, except one per SIGUSR1 received. One gate for the process:
    the mount is shared, and a test signals the process, not a media."""

    def __init__(self):
        self.release = 0
        self.dropped = 0
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, self.on_signal)

    def on_signal(self):
        self.release += 1
        print("nokey release requested", flush=True)
        return True

    def probe(self, _pad, info):
        buf = info.get_buffer()
        if buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
            return Gst.PadProbeReturn.OK
        if self.release > 0:
            self.release -= 1
            print("nokey key frame sent", flush=True)
            return Gst.PadProbeReturn.OK
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10 == 0:
            print(f"nokey key frames withheld: {self.dropped}", flush=True)
        return Gst.PadProbeReturn.DROP


key_gate = KeyGate()

GAP = 4 * Gst.SECOND


def audio_gaps(_pad, info):
    """On /h264aacgaps: drops the AAC frames of every other 4 s of media time."""
    pts = info.get_buffer().pts
    if pts != Gst.CLOCK_TIME_NONE and (pts // GAP) % 2 == 1:
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK

mounts = {
    "/h264aac": video + h264 + aac,
    "/h264pcmu": video + h264 + pcmu,
    "/h264pcma": video + h264 + pcma,
    "/h264l16": video + h264 + l16,
    "/h265aac": video + h265 + aac,
    "/h265": video + h265,
    "/h265meta": video + h265 + meta,
    "/h264aacgaps": video + h264 + aacgaps,
    "/h264big": big,
    "/h264frag": frag,
    "/h264slices": slices,
    "/h264nokey": nokey,
    "/vp8": vp8,
    # Audio-only: the only payloader must be pay0.
    "/pcmu": pcmu.replace("pay1", "pay0"),
    "/aac": aac.replace("pay1", "pay0"),
    "/avsync": avsync,
    "/h264meta": video + h264 + meta,
    "/h264metahostile": video + h264 + meta,
    "/h264metaendless": video + h264 + meta,
    "/h264aacmetaendless": video + h264 + aac + " " + meta_unlinkable,
    "/h264metanosetup": video + h264 + meta,
}


def square(amplitude, offset):
    """A control source switching between offset ± amplitude every 2 s."""
    wave = GstController.LFOControlSource()
    wave.set_property("waveform", GstController.LFOWaveform.SQUARE)
    wave.set_property("frequency", 0.25)
    wave.set_property("amplitude", amplitude)
    wave.set_property("offset", offset)
    return wave


def on_configure(_factory, media, path):
    """Binds /avsync's brightness and volume to the same square wave; starts
    the metadata of /h264meta*; puts the key-frame gate on /h264nokey and the
    sound gaps on /h264aacgaps."""
    if path == "/h264nokey":
        pad = media.get_element().get_by_name("keygate").get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, key_gate.probe)
        return
    if path == "/h264aacgaps":
        pad = media.get_element().get_by_name("audiogate").get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, audio_gaps)
        return
    if "meta" in path:
        mode = next((m for m in ("hostile", "endless") if path.endswith(m)), "normal")
        pipeline = media.get_element()
        src = pipeline.get_by_name("metasrc") or pipeline.get_by_name("pay1")
        track = MetaTrack(src, mode, path)
        media.connect("unprepared", track.stop)
        return
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


def on_pre_setup(_client, ctx):
    """Refuses SETUP of /h264metanosetup's metadata stream (stream=1)."""
    path = ctx.uri.abspath if ctx.uri is not None else ""
    if path.startswith("/h264metanosetup") and path.rstrip("/").endswith("stream=1"):
        print("meta setup refused", flush=True)
        return GstRtsp.RTSPStatusCode.UNSUPPORTED_TRANSPORT
    return GstRtsp.RTSPStatusCode.OK


def on_client(_server, client):
    client.connect("pre-setup-request", on_pre_setup)


server = GstRtspServer.RTSPServer(address="127.0.0.1", service=args.port)
server.connect("client-connected", on_client)
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
    factory.connect("media-configure", on_configure, path)
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
