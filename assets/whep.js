// A WHEP player in plain JavaScript: receives one camera over WebRTC and keeps doing so.
// It reconnects by itself when the connection fails or the picture stops moving.
"use strict";

class WhepPlayer {
  /** @param {string} endpoint WHEP URL; @param {HTMLVideoElement} video; @param {(state: string, detail?: string) => void} onState */
  constructor(endpoint, video, onState) {
    this.endpoint = new URL(endpoint, location.href).href;
    this.video = video;
    this.onState = onState;
    this.pc = null;
    this.session = null;
    this.retryDelay = 1000;
    this.stopped = true;
    this.lastFrames = 0;
    this.lastProgress = Date.now();
  }

  start() {
    this.stopped = false;
    this.connect();
    this.watchdog = setInterval(() => this.checkProgress(), 2000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    this.teardown();
  }

  async connect() {
    this.onState(this.retrying ? "reconnecting" : "connecting");
    const pc = new RTCPeerConnection({ iceServers: await this.iceServers() });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (e) => {
      this.video.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === "connected") {
        this.retryDelay = 1000;
        this.retrying = false;
        this.lastProgress = Date.now();
        this.onState("live");
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
      const res = await fetch(this.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || res.status + " " + res.statusText);
      }
      this.session = new URL(res.headers.get("Location"), this.endpoint).href;
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (err) {
      if (pc === this.pc) this.retry(err.message);
    }
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

  retry(reason) {
    if (this.stopped) return;
    this.teardown();
    this.retrying = true;
    this.onState("reconnecting", reason);
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, 10000);
    setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
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

  /** Frames decoded so far (what the page and its tests read). */
  framesDecoded() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return q ? q.totalVideoFrames : 0;
  }

  checkProgress() {
    if (!this.pc || this.pc.connectionState !== "connected") return;
    const frames = this.framesDecoded();
    if (frames !== this.lastFrames) {
      this.lastFrames = frames;
      this.lastProgress = Date.now();
    } else if (Date.now() - this.lastProgress > 8000 && !this.cameraOffline) {
      // Connected but the picture froze: start over (the server may have restarted).
      this.retry("picture stopped");
    }
  }
}

window.WhepPlayer = WhepPlayer;
