// What every live player on the page shares: start/stop, reconnecting with backoff, and a
// watchdog that starts over when the picture freezes. Subclasses (WhepPlayer, MsePlayer)
// implement connect(), teardown() and isPlaying().
"use strict";

/** Connected but no new frame for this long: the stream is dead, reconnect. */
const FROZEN_MS = 8000;

class LivePlayer {
  /** @param {HTMLVideoElement} video; @param {(state: string, detail?: string) => void} onState */
  constructor(video, onState) {
    this.video = video;
    this.onState = onState;
    this.retryDelay = 1000;
    this.retrying = false;
    this.stopped = true;
    this.lastFrames = 0;
    this.lastProgress = Date.now();
    /** What the stream tells besides pictures ({ latencyMs } or { recording }); the page sets it. */
    this.onInfo = () => {};
    /** The last connection's start-up times in ms, where the player measures them. */
    this.timing = null;
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

  /** The stream is up: reset the backoff and tell the page. */
  wentLive() {
    this.retryDelay = 1000;
    this.retrying = false;
    this.lastProgress = Date.now();
    this.onState("live");
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

  /** Frames decoded so far (what the page and its tests read). */
  framesDecoded() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return q ? q.totalVideoFrames : 0;
  }

  checkProgress() {
    if (!this.isPlaying()) return;
    const frames = this.framesDecoded();
    if (frames !== this.lastFrames) {
      this.lastFrames = frames;
      this.lastProgress = Date.now();
    } else if (Date.now() - this.lastProgress > FROZEN_MS && !this.cameraOffline) {
      // Connected but the picture froze: start over (the server may have restarted).
      this.retry("picture stopped");
    }
  }
}

window.LivePlayer = LivePlayer;
