// A live player over Media Source Extensions, for browsers whose WebRTC has no H.264
// (Firefox without the OpenH264 plugin). Same interface as WhepPlayer: it reconnects by
// itself and keeps playback at the live edge.
"use strict";

/** The avc1 codec string from the avcC box of an init segment, or null if not there yet. */
function avcCodecFrom(bytes) {
  for (let i = 4; i + 8 < bytes.length; i++) {
    if (bytes[i] === 0x61 && bytes[i + 1] === 0x76 && bytes[i + 2] === 0x63 && bytes[i + 3] === 0x43) {
      const hex = (b) => b.toString(16).padStart(2, "0");
      return "avc1." + hex(bytes[i + 5]) + hex(bytes[i + 6]) + hex(bytes[i + 7]);
    }
  }
  return null;
}

/** How far behind the live edge playback may fall before it jumps ahead. */
const MAX_LAG_S = 0.6;

class MsePlayer extends LivePlayer {
  constructor(camera, video, onState) {
    super(video, onState);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}/ws/mse/${camera}`;
  }

  isPlaying() {
    return this.live;
  }

  connect() {
    this.onState(this.retrying ? "reconnecting" : "connecting");
    this.live = false;
    const ms = new MediaSource();
    this.ms = ms;
    this.sb = null;
    this.queue = [];
    this.head = new Uint8Array(0);
    this.video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", () => {
      if (ms !== this.ms) return;
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onmessage = (e) => this.receive(new Uint8Array(e.data));
      ws.onclose = () => { if (ws === this.ws) this.retry("stream closed"); };
    }, { once: true });
  }

  receive(chunk) {
    if (!this.sb) {
      // Collect the init segment until the codec can be read from it.
      const joined = new Uint8Array(this.head.length + chunk.length);
      joined.set(this.head);
      joined.set(chunk, this.head.length);
      this.head = joined;
      const codec = avcCodecFrom(joined);
      if (!codec) return;
      try {
        this.sb = this.ms.addSourceBuffer(`video/mp4; codecs="${codec}"`);
      } catch (err) {
        this.retry("this browser cannot play " + codec + ": " + err.message);
        return;
      }
      this.sb.addEventListener("updateend", () => this.pump());
      chunk = joined;
    }
    this.queue.push(chunk);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating) return;
    const v = this.video;
    if (v.buffered.length) {
      const end = v.buffered.end(v.buffered.length - 1);
      if (end - v.currentTime > MAX_LAG_S) v.currentTime = Math.max(v.buffered.start(v.buffered.length - 1), end - 0.05);
      if (v.paused) v.play().catch(() => {});
      if (!this.live) {
        this.live = true;
        this.wentLive();
      }
      // Keep memory bounded: drop what is more than 10 s behind.
      if (v.currentTime - v.buffered.start(0) > 15 && !this.queue.length) {
        sb.remove(0, v.currentTime - 10);
        return;
      }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (err) {
      this.retry(err.message);
    }
  }

  teardown() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
    this.ms = null;
    this.sb = null;
  }
}

/** True when this browser's WebRTC can receive H.264 (then WHEP is used). */
function webrtcHasH264() {
  try {
    const caps = RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities("video");
    return !!caps && caps.codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
  } catch (_) {
    return false;
  }
}

window.MsePlayer = MsePlayer;
window.webrtcHasH264 = webrtcHasH264;
