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
