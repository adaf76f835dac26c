// Switchboard demo: our WebRTC client for the SFU.
//
// It speaks the protocol of Mattermost's RTCPeer (@mattermost/calls-common), written from the
// protocol facts in reference/rtcd.md 1.9-1.10, not from its code:
//
// - the client makes the first offer, which carries only the data channel "calls-dc";
// - on "calls-dc", every binary message is flat msgpack: a uint8 type, then an optional value
//   (Ping 1 / Pong 2 every second for the RTT, Lock 7 -> Lock(bool), Unlock 8, MediaMap 9);
// - before it adds or removes its own tracks the client takes the signaling lock (Lock, retried
//   every 50 ms for up to 5 s), offers, and sends Unlock once the answer is applied; the SFU
//   takes the same lock for its own offers, so offers never cross;
// - the SFU then offers the tracks it forwards, each offer preceded by a MediaMap
//   (mid -> {type: voice|screen|screen-audio|video, sender_id}) so we know what a track is;
// - mute and unmute only swap the sender's track (replaceTrack), no renegotiation.
//
// SDP and ICE go through the chat host's WebSocket (the `send` callback); whatever the host
// relays back from the SFU goes to signal(). 'rtc connected' is logged to the console when
// media is up (the troubleshooting line of the Calls documentation).
'use strict';

(function (global) {
    // ------------------------------------------------------------------ msgpack (the subset used)

    const textEncoder = new TextEncoder();
    const textDecoder = new TextDecoder('utf-8', {fatal: true});

    class Writer {
        constructor() {
            this.buf = new Uint8Array(64);
            this.view = new DataView(this.buf.buffer);
            this.len = 0;
        }
        reserve(n) {
            if (this.len + n <= this.buf.length) {
                return;
            }
            let size = this.buf.length * 2;
            while (size < this.len + n) {
                size *= 2;
            }
            const next = new Uint8Array(size);
            next.set(this.buf.subarray(0, this.len));
            this.buf = next;
            this.view = new DataView(next.buffer);
        }
        u8(v) {
            this.reserve(1);
            this.buf[this.len++] = v;
        }
        u16(v) {
            this.reserve(2);
            this.view.setUint16(this.len, v);
            this.len += 2;
        }
        u32(v) {
            this.reserve(4);
            this.view.setUint32(this.len, v);
            this.len += 4;
        }
        bytes(b) {
            this.reserve(b.length);
            this.buf.set(b, this.len);
            this.len += b.length;
        }
        result() {
            return this.buf.slice(0, this.len);
        }
    }

    function encodeValue(w, v) {
        if (v === null || v === undefined) {
            w.u8(0xc0);
        } else if (v === false) {
            w.u8(0xc2);
        } else if (v === true) {
            w.u8(0xc3);
        } else if (typeof v === 'number') {
            if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) {
                if (v < 0x80) {
                    w.u8(v);
                } else if (v < 0x100) {
                    w.u8(0xcc); w.u8(v);
                } else if (v < 0x10000) {
                    w.u8(0xcd); w.u16(v);
                } else {
                    w.u8(0xce); w.u32(v);
                }
            } else if (Number.isInteger(v) && v < 0 && v >= -0x80000000) {
                if (v >= -32) {
                    w.u8(v & 0xff);
                } else if (v >= -0x80) {
                    w.u8(0xd0); w.u8(v & 0xff);
                } else if (v >= -0x8000) {
                    w.u8(0xd1); w.u16(v & 0xffff);
                } else {
                    w.u8(0xd2); w.u32(v >>> 0);
                }
            } else {
                w.u8(0xcb);
                w.reserve(8);
                w.view.setFloat64(w.len, v);
                w.len += 8;
            }
        } else if (typeof v === 'string') {
            const b = textEncoder.encode(v);
            if (b.length < 32) {
                w.u8(0xa0 | b.length);
            } else if (b.length < 0x100) {
                w.u8(0xd9); w.u8(b.length);
            } else if (b.length < 0x10000) {
                w.u8(0xda); w.u16(b.length);
            } else {
                w.u8(0xdb); w.u32(b.length);
            }
            w.bytes(b);
        } else if (v instanceof Uint8Array) {
            if (v.length < 0x100) {
                w.u8(0xc4); w.u8(v.length);
            } else if (v.length < 0x10000) {
                w.u8(0xc5); w.u16(v.length);
            } else {
                w.u8(0xc6); w.u32(v.length);
            }
            w.bytes(v);
        } else if (Array.isArray(v)) {
            if (v.length < 16) {
                w.u8(0x90 | v.length);
            } else if (v.length < 0x10000) {
                w.u8(0xdc); w.u16(v.length);
            } else {
                w.u8(0xdd); w.u32(v.length);
            }
            v.forEach((x) => encodeValue(w, x));
        } else if (typeof v === 'object') {
            const keys = Object.keys(v);
            if (keys.length < 16) {
                w.u8(0x80 | keys.length);
            } else if (keys.length < 0x10000) {
                w.u8(0xde); w.u16(keys.length);
            } else {
                w.u8(0xdf); w.u32(keys.length);
            }
            keys.forEach((k) => {
                encodeValue(w, k);
                encodeValue(w, v[k]);
            });
        } else {
            throw new TypeError(`msgpack: cannot encode ${typeof v}`);
        }
    }

    class Reader {
        constructor(bytes) {
            this.b = bytes;
            this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
            this.pos = 0;
        }
        need(n) {
            if (this.pos + n > this.b.length) {
                throw new RangeError('msgpack: truncated data');
            }
            const at = this.pos;
            this.pos += n;
            return at;
        }
        u8() {
            return this.b[this.need(1)];
        }
        value(depth = 0) {
            if (depth > 32) {
                throw new RangeError('msgpack: nested too deeply');
            }
            const t = this.u8();
            const v = this.view;
            if (t < 0x80) {
                return t;
            }
            if (t >= 0xe0) {
                return t - 0x100;
            }
            if ((t & 0xe0) === 0xa0) {
                return this.str(t & 0x1f);
            }
            if ((t & 0xf0) === 0x90) {
                return this.array(t & 0x0f, depth);
            }
            if ((t & 0xf0) === 0x80) {
                return this.map(t & 0x0f, depth);
            }
            switch (t) {
            case 0xc0: return null;
            case 0xc2: return false;
            case 0xc3: return true;
            case 0xc4: return this.bin(this.u8());
            case 0xc5: return this.bin(v.getUint16(this.need(2)));
            case 0xc6: return this.bin(v.getUint32(this.need(4)));
            case 0xca: return v.getFloat32(this.need(4));
            case 0xcb: return v.getFloat64(this.need(8));
            case 0xcc: return this.u8();
            case 0xcd: return v.getUint16(this.need(2));
            case 0xce: return v.getUint32(this.need(4));
            case 0xcf: return Number(v.getBigUint64(this.need(8)));
            case 0xd0: return v.getInt8(this.need(1));
            case 0xd1: return v.getInt16(this.need(2));
            case 0xd2: return v.getInt32(this.need(4));
            case 0xd3: return Number(v.getBigInt64(this.need(8)));
            case 0xd9: return this.str(this.u8());
            case 0xda: return this.str(v.getUint16(this.need(2)));
            case 0xdb: return this.str(v.getUint32(this.need(4)));
            case 0xdc: return this.array(v.getUint16(this.need(2)), depth);
            case 0xdd: return this.array(v.getUint32(this.need(4)), depth);
            case 0xde: return this.map(v.getUint16(this.need(2)), depth);
            case 0xdf: return this.map(v.getUint32(this.need(4)), depth);
            default: throw new TypeError(`msgpack: unsupported type byte 0x${t.toString(16)}`);
            }
        }
        str(n) {
            const at = this.need(n);
            return textDecoder.decode(this.b.subarray(at, at + n));
        }
        bin(n) {
            const at = this.need(n);
            return this.b.slice(at, at + n);
        }
        array(n, depth) {
            const out = [];
            for (let i = 0; i < n; i++) {
                out.push(this.value(depth + 1));
            }
            return out;
        }
        map(n, depth) {
            const out = {};
            for (let i = 0; i < n; i++) {
                const k = this.value(depth + 1);
                out[String(k)] = this.value(depth + 1);
            }
            return out;
        }
    }

    const msgpack = {
        // Several values back to back, as calls-dc frames them (type, then payload).
        encode(...values) {
            const w = new Writer();
            values.forEach((v) => encodeValue(w, v));
            return w.result();
        },
        decodeAll(bytes) {
            const r = new Reader(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
            const out = [];
            while (r.pos < r.b.length) {
                out.push(r.value());
            }
            return out;
        },
    };

    // ------------------------------------------------------------------ the client

    const DC = {PING: 1, PONG: 2, SDP: 3, LOSS_RATE: 4, RTT: 5, JITTER: 6, LOCK: 7, UNLOCK: 8, MEDIA_MAP: 9};
    const LOCK_TIMEOUT_MS = 5000;
    const LOCK_RETRY_MS = 50;
    const ANSWER_TIMEOUT_MS = 10000;

    class RtcClient {
        // opts: {iceServers, send(kind: 'sdp'|'ice', data), connectTimeoutMs, log(level, ...args)}
        constructor(opts) {
            this.opts = opts;
            this.listeners = {};
            this.pc = null;
            this.dc = null;
            this.connected = false;
            this.closed = false;
            this.mediaMap = {};
            this.remote = new Map();          // mid -> {track, info}
            this.pendingTracks = new Map();   // mid -> track waiting for its MediaMap entry
            this.pendingCandidates = [];
            this.signalChain = Promise.resolve();
            this.negotiationChain = Promise.resolve();
            this.answerWaiter = null;
            this.lockWaiter = null;
            this.rtt = 0;
            this.pingSentAt = 0;
            this.timers = [];
            this.stateLog = [];
        }

        on(event, fn) {
            (this.listeners[event] = this.listeners[event] || []).push(fn);
            return this;
        }

        emit(event, ...args) {
            (this.listeners[event] || []).forEach((fn) => {
                try {
                    fn(...args);
                } catch (err) {
                    this.log('error', `${event} listener failed`, err);
                }
            });
        }

        log(level, ...args) {
            if (this.opts.log) {
                this.opts.log(level, ...args);
            }
        }

        start() {
            const pc = new RTCPeerConnection({
                iceServers: this.opts.iceServers || [],
                bundlePolicy: 'max-bundle',
                rtcpMuxPolicy: 'require',
            });
            this.pc = pc;
            const dc = pc.createDataChannel('calls-dc');
            dc.binaryType = 'arraybuffer';
            this.dc = dc;
            dc.onopen = () => {
                this.log('info', 'calls-dc open');
                this.timers.push(setInterval(() => this.ping(), 1000));
            };
            dc.onmessage = (ev) => this.onDCMessage(ev.data);
            pc.onicecandidate = (ev) => {
                if (ev.candidate && ev.candidate.candidate) {
                    this.opts.send('ice', ev.candidate.toJSON());
                }
            };
            pc.onconnectionstatechange = () => {
                const state = pc.connectionState;
                this.stateLog.push(state);
                if (state === 'connected' && !this.connected) {
                    this.connected = true;
                    console.log('rtc connected');
                    this.emit('connect');
                } else if (state === 'failed') {
                    this.emit('close', new Error('rtc connection failed'));
                } else if (state === 'closed' && !this.closed) {
                    this.emit('close', null);
                }
            };
            pc.ontrack = (ev) => this.onTrack(ev);
            const timeout = this.opts.connectTimeoutMs || 10000;
            this.timers.push(setTimeout(() => {
                if (!this.connected && !this.closed) {
                    this.emit('timeout', timeout);
                }
            }, timeout));
            // The first offer: only the data channel (the SFU sends media once it is open).
            this.negotiationChain = this.offerAndWait();
            this.negotiationChain.catch((err) => this.emit('error', err));
            return this;
        }

        // ---------------------------------------------------------------- calls-dc

        sendDC(type, payload) {
            if (!this.dc || this.dc.readyState !== 'open') {
                return false;
            }
            this.dc.send(payload === undefined ? msgpack.encode(type) : msgpack.encode(type, payload));
            return true;
        }

        ping() {
            this.pingSentAt = performance.now();
            this.sendDC(DC.PING);
        }

        onDCMessage(data) {
            if (typeof data === 'string') {
                if (data === 'pong' && this.pingSentAt) {
                    this.rtt = (performance.now() - this.pingSentAt) / 1000;
                }
                return;
            }
            let values;
            try {
                values = msgpack.decodeAll(new Uint8Array(data));
            } catch (err) {
                this.log('warn', 'bad calls-dc message', err);
                return;
            }
            const [type, payload] = values;
            switch (type) {
            case DC.PONG:
                if (this.pingSentAt) {
                    this.rtt = (performance.now() - this.pingSentAt) / 1000;
                }
                break;
            case DC.LOCK:
                if (this.lockWaiter) {
                    const resolve = this.lockWaiter;
                    this.lockWaiter = null;
                    resolve(Boolean(payload));
                } else if (payload) {
                    this.sendDC(DC.UNLOCK);   // a late grant nobody waits for: give it back
                }
                break;
            case DC.MEDIA_MAP:
                if (payload && typeof payload === 'object') {
                    this.mediaMap = payload;
                    for (const [mid, track] of [...this.pendingTracks]) {
                        if (this.mediaMap[mid]) {
                            this.pendingTracks.delete(mid);
                            this.addRemote(mid, track);
                        }
                    }
                }
                break;
            case DC.SDP:
                this.log('warn', 'SDP over calls-dc is not used by this client');
                break;
            default:
                break;
            }
        }

        // Take the signaling lock (reference: rtcd dc/lock.go): Lock, retried every 50 ms.
        async lock() {
            const deadline = performance.now() + LOCK_TIMEOUT_MS;
            while (performance.now() < deadline) {
                if (!this.dc || this.dc.readyState !== 'open') {
                    throw new Error('the data channel is not open');
                }
                const reply = new Promise((resolve) => {
                    this.lockWaiter = resolve;
                    setTimeout(() => {
                        if (this.lockWaiter === resolve) {
                            this.lockWaiter = null;
                            resolve(false);
                        }
                    }, 1000);
                });
                this.sendDC(DC.LOCK);
                if (await reply) {
                    return;
                }
                await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
            }
            throw new Error('timed out waiting for the signaling lock');
        }

        // ---------------------------------------------------------------- negotiation

        async offerAndWait() {
            const pc = this.pc;
            const offer = await pc.createOffer();
            await pc.setLocalDescription(offer);
            const answered = new Promise((resolve, reject) => {
                this.answerWaiter = {resolve, reject};
                setTimeout(() => reject(new Error('no answer from the server within 10 s')), ANSWER_TIMEOUT_MS);
            });
            this.opts.send('sdp', {type: pc.localDescription.type, sdp: pc.localDescription.sdp});
            try {
                await answered;
            } finally {
                this.answerWaiter = null;
            }
        }

        // Change our own tracks under the lock, then offer; serialised.
        negotiate(change) {
            const run = async () => {
                await this.lock();
                try {
                    const result = await change();
                    await this.offerAndWait();
                    return result;
                } finally {
                    this.sendDC(DC.UNLOCK);
                }
            };
            const next = this.negotiationChain.catch(() => undefined).then(run);
            this.negotiationChain = next;
            return next;
        }

        // What the host relays from the SFU: {type: offer|answer, sdp} or {type: candidate, ...}.
        signal(msg) {
            this.signalChain = this.signalChain.then(() => this.applySignal(msg)).catch((err) => {
                this.log('error', `applying the server's ${msg.type} failed`, err);
                this.emit('error', err);
            });
            return this.signalChain;
        }

        async applySignal(msg) {
            const pc = this.pc;
            if (!pc || this.closed) {
                return;
            }
            if (msg.type === 'offer') {
                await pc.setRemoteDescription({type: 'offer', sdp: msg.sdp});
                await this.flushCandidates();
                const answer = await pc.createAnswer();
                await pc.setLocalDescription(answer);
                this.opts.send('sdp', {type: 'answer', sdp: pc.localDescription.sdp});
                this.reconcileRemote();
            } else if (msg.type === 'answer') {
                await pc.setRemoteDescription({type: 'answer', sdp: msg.sdp});
                await this.flushCandidates();
                this.reconcileRemote();
                if (this.answerWaiter) {
                    this.answerWaiter.resolve();
                }
            } else if (msg.type === 'candidate') {
                const cand = msg.candidate && typeof msg.candidate === 'object' ? msg.candidate : msg;
                if (pc.remoteDescription) {
                    await pc.addIceCandidate(cand);
                } else {
                    this.pendingCandidates.push(cand);
                }
            }
        }

        async flushCandidates() {
            const queued = this.pendingCandidates;
            this.pendingCandidates = [];
            for (const c of queued) {
                await this.pc.addIceCandidate(c);
            }
        }

        // ---------------------------------------------------------------- remote tracks

        onTrack(ev) {
            const mid = ev.transceiver.mid;
            const track = ev.track;
            track.addEventListener('ended', () => this.dropRemote(mid, track));
            if (this.mediaMap[mid]) {
                this.addRemote(mid, track);
            } else {
                // the MediaMap travels on the data channel, the offer through the host: wait for it
                this.pendingTracks.set(mid, track);
            }
        }

        addRemote(mid, track) {
            const prev = this.remote.get(mid);
            if (prev && prev.track === track) {
                return;
            }
            if (prev) {
                this.dropRemote(mid, prev.track);
            }
            const info = {type: this.mediaMap[mid].type, sender_id: this.mediaMap[mid].sender_id};
            this.remote.set(mid, {track, info});
            this.emit('track', {mid, track, info});
        }

        dropRemote(mid, track) {
            const cur = this.remote.get(mid);
            if (cur && cur.track === track) {
                this.remote.delete(mid);
                this.emit('trackremoved', {mid, info: cur.info});
            }
            if (this.pendingTracks.get(mid) === track) {
                this.pendingTracks.delete(mid);
            }
        }

        // After each description: tracks whose m-section stopped or no longer receives are gone.
        reconcileRemote() {
            const byMid = new Map(this.pc.getTransceivers().map((t) => [t.mid, t]));
            for (const [mid, entry] of [...this.remote]) {
                const t = byMid.get(mid);
                const dir = t ? t.currentDirection : 'stopped';
                if (!t || t.stopped || dir === 'stopped' || dir === 'inactive' || dir === 'sendonly') {
                    this.dropRemote(mid, entry.track);
                }
            }
        }

        // ---------------------------------------------------------------- our tracks

        // Microphone: added once (on the first unmute); mute/unmute swap the sender's track.
        // A new sendonly transceiver, never pc.addTrack: addTrack would reuse a receive-only
        // transceiver the SFU created for someone else's voice, and send on the SFU's m-line.
        async addAudio(track, stream) {
            return this.negotiate(() => this.pc.addTransceiver(track, {direction: 'sendonly', streams: [stream]}).sender);
        }

        // Screen or camera: one sendonly transceiver, one encoding (1 Mbps, like RTCPeer without
        // simulcast). The msid stream id is what ScreenOn/VideoOn announced to the SFU.
        async addVideo(track, stream, {maxBitrate = 1000000, maxFramerate = 15} = {}) {
            return this.negotiate(() => this.pc.addTransceiver(track, {
                direction: 'sendonly',
                streams: [stream],
                sendEncodings: [{maxBitrate, maxFramerate}],
            }).sender);
        }

        async removeSender(sender) {
            return this.negotiate(() => {
                if (this.pc.getSenders().includes(sender)) {
                    this.pc.removeTrack(sender);
                }
            });
        }

        // ---------------------------------------------------------------- stats and teardown

        async stats() {
            const out = {audioIn: [], videoIn: [], out: [], pair: null, rtt: this.rtt};
            if (!this.pc) {
                return out;
            }
            const report = await this.pc.getStats();
            const byId = new Map();
            report.forEach((s) => byId.set(s.id, s));
            report.forEach((s) => {
                if (s.type === 'inbound-rtp') {
                    const entry = this.remote.get(s.mid);
                    const base = {mid: s.mid, info: entry ? entry.info : (this.mediaMap[s.mid] || null),
                        packetsReceived: s.packetsReceived || 0, bytesReceived: s.bytesReceived || 0};
                    if (s.kind === 'audio') {
                        out.audioIn.push({...base, totalAudioEnergy: s.totalAudioEnergy || 0,
                            audioLevel: s.audioLevel || 0, totalSamplesReceived: s.totalSamplesReceived || 0});
                    } else {
                        out.videoIn.push({...base, framesDecoded: s.framesDecoded || 0,
                            frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0});
                    }
                } else if (s.type === 'outbound-rtp') {
                    out.out.push({kind: s.kind, mid: s.mid, packetsSent: s.packetsSent || 0,
                        framesEncoded: s.framesEncoded || 0});
                } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
                    const local = byId.get(s.localCandidateId);
                    const remote = byId.get(s.remoteCandidateId);
                    out.pair = {
                        local: local ? `${local.protocol} ${local.address}:${local.port}` : null,
                        remote: remote ? `${remote.protocol} ${remote.address}:${remote.port}` : null,
                    };
                }
            });
            return out;
        }

        close() {
            if (this.closed) {
                return;
            }
            this.closed = true;
            this.timers.forEach((t) => {
                clearInterval(t);
                clearTimeout(t);
            });
            if (this.answerWaiter) {
                this.answerWaiter.reject(new Error('closed'));
            }
            try {
                if (this.dc) {
                    this.dc.close();
                }
                if (this.pc) {
                    this.pc.close();
                }
            } catch (err) {
                this.log('warn', 'closing the peer connection', err);
            }
        }
    }

    global.SwitchboardRTC = {RtcClient, msgpack, DC};
})(window);
