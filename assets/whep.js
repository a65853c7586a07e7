// A WHEP player in plain JavaScript: receives one camera over WebRTC and keeps doing so.
// It reconnects by itself when the connection fails or the picture stops moving.
"use strict";

class WhepPlayer extends LivePlayer {
  /** @param {string} endpoint WHEP URL; @param {HTMLVideoElement} video; @param {(state: string, detail?: string) => void} onState */
  constructor(endpoint, video, onState) {
    super(video, onState);
    this.endpoint = new URL(endpoint, location.href).href;
    this.pc = null;
    this.session = null;
  }

  isPlaying() {
    return !!this.pc && this.pc.connectionState === "connected";
  }

  async connect() {
    this.onState(this.retrying ? "reconnecting" : "connecting");
    const pc = new RTCPeerConnection({ iceServers: await this.iceServers() });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    this.followChannel(pc, pc.createDataChannel("lookout"));
    pc.ontrack = (e) => {
      this.video.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === "connected") {
        this.wentLive();
      } else if (s === "failed" || s === "closed") {
        this.retry("connection " + s);
      } else if (s === "disconnected") {
        // Often heals by itself within a few seconds; give up on it if not.
        setTimeout(() => { if (pc === this.pc && pc.connectionState === "disconnected") this.retry("connection lost"); }, 4000);
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await this.gathered(pc, 2000);
      this.timeFirstFrame(pc, performance.now());
      const res = await fetch(this.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || res.status + " " + res.statusText);
      }
      this.timing.answerMs = performance.now() - this.timing.postedAt;
      this.session = new URL(res.headers.get("Location"), this.endpoint).href;
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (err) {
      if (pc === this.pc) this.retry(err.message);
    }
  }

  /**
   * How long this connection took from its POST: to the answer and to the first frame on
   * screen (`timing`, which the page's benchmarks read).
   */
  timeFirstFrame(pc, postedAt) {
    this.timing = { postedAt, answerMs: null, firstFrameMs: null };
    const timing = this.timing;
    const shown = (when) => {
      if (pc === this.pc && timing.firstFrameMs === null) timing.firstFrameMs = when - postedAt;
    };
    if (this.video.requestVideoFrameCallback) {
      this.video.requestVideoFrameCallback((now, meta) => shown(meta.presentationTime || now));
    } else {
      this.video.addEventListener("loadeddata", () => shown(performance.now()), { once: true });
    }
  }

  /**
   * The session's data channel: the camera's state and events (the recording dot), and stats
   * with the capture time of the newest frame by the device's clock. With the device's clock
   * aligned by ping/pong and the RTP timestamp of the frame on screen, that gives the
   * glass-to-glass latency, reported through `onInfo({ latencyMs })` (and `{ recording }`).
   */
  followChannel(pc, channel) {
    let offset = null, bestRtt = Infinity, frame = null, pings = null;
    const ping = () => channel.readyState === "open" && channel.send(JSON.stringify({ type: "ping", id: "clock", t: Date.now() }));
    channel.onopen = () => { ping(); pings = setInterval(ping, 5000); };
    channel.onclose = () => clearInterval(pings);
    channel.onmessage = (e) => {
      if (typeof e.data !== "string" || pc !== this.pc) return;
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      if (m.type === "pong" && typeof m.t === "number") {
        const rtt = Date.now() - m.t;
        // The exchange with the shortest round trip says the most about the clocks.
        if (rtt <= bestRtt * 1.5) { bestRtt = Math.min(bestRtt, rtt); offset = m.now_ms - (m.t + rtt / 2); }
      } else if (m.type === "stats") {
        if (m.frame) frame = { rtp: m.frame.rtp_timestamp, at: m.frame.captured_at_ms, reportedAt: m.now_ms };
        this.onInfo({ recording: m.recording });
        if (offset !== null && frame && !this.video.requestVideoFrameCallback) {
          // No frame callback: the newest frame's age when reported, plus half the round trip.
          this.onInfo({ latencyMs: frame.reportedAt - frame.at + bestRtt / 2 });
        }
      } else if (m.type === "state" && m.camera) {
        this.onInfo({ recording: m.camera.recording });
      } else if (/^recording_(started|paused|stopped)$/.test(m.type)) {
        this.onInfo({ recording: m.type === "recording_started" });
      }
    };
    if (!this.video.requestVideoFrameCallback) return;
    let shown = 0;
    const onFrame = (_now, meta) => {
      if (pc !== this.pc) return;
      if (offset !== null && frame && typeof meta.rtpTimestamp === "number" && Date.now() - shown > 500) {
        // The frame on screen was captured `(its RTP time - the reported one's) / 90 kHz`
        // after the reported frame (RTP timestamps wrap at 2^32).
        const captured = frame.at + ((meta.rtpTimestamp - frame.rtp) | 0) / 90;
        this.onInfo({ latencyMs: Date.now() + offset - captured });
        shown = Date.now();
      } else if (offset !== null && frame && typeof meta.rtpTimestamp !== "number" && Date.now() - shown > 500) {
        this.onInfo({ latencyMs: frame.reportedAt - frame.at + bestRtt / 2 });
        shown = Date.now();
      }
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  /** ICE servers the endpoint advertises in Link headers (none on a LAN). */
  async iceServers() {
    try {
      const res = await fetch(this.endpoint, { method: "OPTIONS" });
      const links = (res.headers.get("Link") || "").split(/,(?=\s*<)/).filter((l) => /rel="ice-server"/.test(l));
      return links.map((l) => {
        const server = { urls: l.match(/<([^>]+)>/)[1] };
        const user = l.match(/username="([^"]*)"/);
        const cred = l.match(/credential="([^"]*)"/);
        if (user) server.username = user[1];
        if (cred) server.credential = cred[1];
        return server;
      });
    } catch (_) {
      return [];
    }
  }

  gathered(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs);
    });
  }

  teardown() {
    if (this.session) {
      fetch(this.session, { method: "DELETE", keepalive: true }).catch(() => {});
      this.session = null;
    }
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
  }
}

window.WhepPlayer = WhepPlayer;
