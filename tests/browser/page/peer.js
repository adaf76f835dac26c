// Our test page script (small on purpose): drives the unmodified RTCPeer from
// @mattermost/calls-common the way the Calls webapp does, over a tiny JSON WebSocket to the
// test relay (which stands in for the Mattermost plugin), and exposes window.sb to the
// Playwright driver.
//
// Webapp flow copied here: join, then `new RTCPeer()` (first offer = calls-dc only);
// unmute = getUserMedia + peer.addTrack + "unmute"; mute = replaceTrack(null) + "mute";
// screen share = "screen_on" {screenStreamID} then peer.addStream; stop = "screen_off" then
// peer.removeTrack. Everything the server sends is handed to peer.signal(jsonString).
'use strict';

(() => {
    const params = new URLSearchParams(location.search);
    const sessionID = params.get('session') || 'anon';
    const callID = params.get('call') || 'call1';
    const t0 = performance.now();
    const now = () => Math.round(performance.now() - t0);

    const st = {
        session: sessionID,
        connected: false,
        closed: null,
        serverClose: null,
        iceStates: [],
        connStates: [],
        signalingStates: [],
        offersSent: 0,
        answersSent: 0,
        offersReceived: 0,
        answersReceived: 0,
        candidatesSent: 0,
        signalErrors: [],
        peerErrors: [],
        remote: [],
        vad: [],
        logs: [],
    };
    let ws = null;
    let peer = null;
    let mic = null;
    let screen = null;
    let signalChain = Promise.resolve();
    let joinedResolve = null;

    const show = (a) => {
        if (a instanceof Error) {
            return a.message;
        }
        return typeof a === 'string' ? a : JSON.stringify(a);
    };
    const log = (level, args) => {
        st.logs.push(`${now()} ${level} ${args.map(show).join(' ')}`);
        if (st.logs.length > 300) {
            st.logs.splice(0, st.logs.length - 300);
        }
    };
    const logger = {
        logDebug: (...a) => log('debug', a),
        logInfo: (...a) => log('info', a),
        logWarn: (...a) => log('warn', a),
        logErr: (...a) => log('error', a),
    };

    const send = (type, extra) => ws.send(JSON.stringify({type, ...(extra || {})}));

    function openSocket() {
        return new Promise((resolve, reject) => {
            const q = `session=${encodeURIComponent(sessionID)}&call=${encodeURIComponent(callID)}`;
            ws = new WebSocket(`ws://${location.host}/ws?${q}`);
            ws.onopen = () => resolve();
            ws.onerror = () => reject(new Error('relay websocket failed'));
            ws.onclose = () => log('info', ['relay websocket closed']);
            ws.onmessage = (ev) => onRelayMessage(JSON.parse(ev.data));
        });
    }

    function onRelayMessage(msg) {
        switch (msg.type) {
        case 'joined':
            joinedResolve();
            break;
        case 'signal':
            // one at a time, in arrival order
            signalChain = signalChain.then(() => applySignal(msg.data));
            break;
        case 'vad':
            st.vad.push([now(), msg.on]);
            break;
        case 'close':
            st.serverClose = msg.reason;
            break;
        case 'error':
            st.peerErrors.push(`relay: ${msg.message}`);
            break;
        default:
            log('warn', ['unknown relay message', msg]);
        }
    }

    async function applySignal(data) {
        const msg = JSON.parse(data);
        if (msg.type === 'offer') {
            st.offersReceived++;
        } else if (msg.type === 'answer') {
            st.answersReceived++;
        }
        try {
            await peer.signal(data);
        } catch (err) {
            // what chrome://webrtc-internals would show: the error and the SDP it was about
            st.signalErrors.push({
                type: msg.type,
                at: now(),
                message: String((err && err.message) || err),
                sdp: msg.sdp || null,
            });
        }
    }

    function onRemoteStream(stream) {
        const track = stream.getTracks()[0];
        const trx = peer.pc.getTransceivers().find((t) => t.receiver.track === track);
        const entry = {id: track.id, kind: track.kind, mid: trx ? trx.mid : null, at: now(), ended: false};
        st.remote.push(entry);
        const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
        el.autoplay = true;
        el.playsInline = true;
        if (track.kind === 'video') {
            el.muted = true;
        }
        el.dataset.trackId = track.id;
        el.dataset.mid = entry.mid;
        el.srcObject = stream;  // an audio sink: Chrome only decodes remote audio that has one
        document.getElementById('media').appendChild(el);
        el.play().catch((err) => log('warn', ['play() failed', err]));
        track.addEventListener('ended', () => {
            entry.ended = true;
            el.remove();
        });
    }

    function recordState(list, value) {
        list.push([now(), value]);
        const pc = peer.pc;
        document.getElementById('status').textContent =
            `${sessionID}: ice=${pc.iceConnectionState} conn=${pc.connectionState} sig=${pc.signalingState}`;
    }

    async function join(opts) {
        const o = opts || {};
        await openSocket();
        const joined = new Promise((resolve) => {
            joinedResolve = resolve;
        });
        send('join');
        await joined;
        const config = {iceServers: [], logger, simulcast: Boolean(o.simulcast)};
        peer = new window.CallsCommon.RTCPeer(config);
        const pc = peer.pc;
        recordState(st.iceStates, pc.iceConnectionState);
        recordState(st.connStates, pc.connectionState);
        recordState(st.signalingStates, pc.signalingState);
        pc.addEventListener('iceconnectionstatechange', () => recordState(st.iceStates, pc.iceConnectionState));
        pc.addEventListener('connectionstatechange', () => recordState(st.connStates, pc.connectionState));
        pc.addEventListener('signalingstatechange', () => recordState(st.signalingStates, pc.signalingState));
        peer.on('offer', (desc) => {
            st.offersSent++;
            send('sdp', {data: {type: desc.type, sdp: desc.sdp}});
        });
        peer.on('answer', (desc) => {
            st.answersSent++;
            send('sdp', {data: {type: desc.type, sdp: desc.sdp}});
        });
        peer.on('candidate', (c) => {
            st.candidatesSent++;
            send('ice', {data: c.toJSON()});
        });
        peer.on('connect', () => {
            st.connected = true;
        });
        peer.on('close', (err) => {
            st.closed = err ? String(err.message || err) : 'closed';
        });
        peer.on('error', (err) => st.peerErrors.push(String((err && err.message) || err)));
        peer.on('stream', onRemoteStream);
    }

    async function addMic() {
        if (mic) {
            return mic.id;
        }
        const stream = await navigator.mediaDevices.getUserMedia({
            // Chrome's AEC/NS/AGC would attenuate the fake device's tone (browsers.md 2.3)
            audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false},
            video: false,
        });
        mic = stream.getAudioTracks()[0];
        await peer.addTrack(mic, stream);
        return mic.id;
    }

    async function unmute() {
        if (mic) {
            peer.replaceTrack(mic.id, mic);
        } else {
            await addMic();
        }
        send('unmute');
    }

    function mute() {
        peer.replaceTrack(mic.id, null);
        send('mute');
    }

    async function shareScreen() {
        const stream = await navigator.mediaDevices.getDisplayMedia({video: true, audio: false});
        screen = stream;
        send('screen_on', {data: {screenStreamID: stream.id}});
        peer.addStream(stream);
        const track = stream.getVideoTracks()[0];
        return {streamID: stream.id, trackID: track.id, label: track.label};
    }

    function stopScreen() {
        const track = screen.getVideoTracks()[0];
        send('screen_off');
        peer.removeTrack(track.id);
        track.stop();
        screen = null;
    }

    function leave() {
        send('leave');
        peer.destroy();
        ws.close();
    }

    async function stats() {
        const report = await peer.getStats();
        const byId = new Map();
        report.forEach((s) => byId.set(s.id, s));
        const midOfTrack = new Map(st.remote.map((r) => [r.id, r.mid]));
        const out = {audioIn: [], videoIn: [], out: [], transport: null, pair: null};
        report.forEach((s) => {
            if (s.type === 'inbound-rtp') {
                const codec = byId.get(s.codecId);
                const base = {
                    mid: s.mid || midOfTrack.get(s.trackIdentifier) || null,
                    ssrc: s.ssrc,
                    packetsReceived: s.packetsReceived || 0,
                    packetsLost: s.packetsLost || 0,
                    bytesReceived: s.bytesReceived || 0,
                    codec: codec ? codec.mimeType : null,
                    payloadType: codec ? codec.payloadType : null,
                };
                if (s.kind === 'audio') {
                    out.audioIn.push({
                        ...base,
                        totalAudioEnergy: s.totalAudioEnergy || 0,
                        totalSamplesReceived: s.totalSamplesReceived || 0,
                        concealedSamples: s.concealedSamples || 0,
                        audioLevel: s.audioLevel || 0,
                    });
                } else {
                    out.videoIn.push({
                        ...base,
                        framesDecoded: s.framesDecoded || 0,
                        keyFramesDecoded: s.keyFramesDecoded || 0,
                        frameWidth: s.frameWidth || 0,
                        frameHeight: s.frameHeight || 0,
                        pliCount: s.pliCount || 0,
                        nackCount: s.nackCount || 0,
                        decoderImplementation: s.decoderImplementation || null,
                    });
                }
            } else if (s.type === 'outbound-rtp') {
                out.out.push({
                    kind: s.kind,
                    mid: s.mid || null,
                    rid: s.rid || null,
                    ssrc: s.ssrc,
                    packetsSent: s.packetsSent || 0,
                    framesEncoded: s.framesEncoded || 0,
                    frameWidth: s.frameWidth || 0,
                    active: s.active,
                });
            } else if (s.type === 'transport') {
                out.transport = {
                    iceState: s.iceState,
                    dtlsState: s.dtlsState,
                    dtlsRole: s.dtlsRole,
                    srtpCipher: s.srtpCipher,
                    dtlsCipher: s.dtlsCipher,
                    tlsVersion: s.tlsVersion,
                    selectedCandidatePairChanges: s.selectedCandidatePairChanges,
                };
                const pair = byId.get(s.selectedCandidatePairId);
                if (pair) {
                    const cand = (c) => (c ? `${c.protocol} ${c.address}:${c.port} ${c.candidateType}` : null);
                    out.pair = {
                        state: pair.state,
                        nominated: pair.nominated,
                        currentRoundTripTime: pair.currentRoundTripTime,
                        local: cand(byId.get(pair.localCandidateId)),
                        remote: cand(byId.get(pair.remoteCandidateId)),
                    };
                }
            }
        });
        return out;
    }

    // Draw each remote video into a small canvas: non-zero luma variance means real pixels.
    function videoFrames() {
        return [...document.querySelectorAll('video')].map((v) => {
            const info = {
                mid: v.dataset.mid,
                videoWidth: v.videoWidth,
                videoHeight: v.videoHeight,
                readyState: v.readyState,
                mean: 0,
                variance: 0,
            };
            if (v.videoWidth > 0) {
                const c = document.createElement('canvas');
                c.width = 160;
                c.height = 90;
                const ctx = c.getContext('2d', {willReadFrequently: true});
                ctx.drawImage(v, 0, 0, c.width, c.height);
                const d = ctx.getImageData(0, 0, c.width, c.height).data;
                let sum = 0;
                let sq = 0;
                const n = d.length / 4;
                for (let i = 0; i < d.length; i += 4) {
                    const y = (0.299 * d[i]) + (0.587 * d[i + 1]) + (0.114 * d[i + 2]);
                    sum += y;
                    sq += y * y;
                }
                info.mean = sum / n;
                info.variance = (sq / n) - (info.mean * info.mean);
            }
            return info;
        });
    }

    function summary() {
        const pc = peer ? peer.pc : null;
        return {
            ...st,
            logs: undefined,
            rtt: peer && pc ? peer.getRTT() : 0,
            iceConnectionState: pc ? pc.iceConnectionState : null,
            connectionState: pc ? pc.connectionState : null,
            signalingState: pc ? pc.signalingState : null,
            transceivers: pc ? pc.getTransceivers().map((t) => ({
                mid: t.mid,
                direction: t.direction,
                currentDirection: t.currentDirection,
                kind: t.receiver.track.kind,
            })) : [],
        };
    }

    function diagnostics() {
        const pc = peer ? peer.pc : null;
        return {
            logs: st.logs.slice(-80),
            localSdp: pc && pc.localDescription ? pc.localDescription.sdp : null,
            remoteSdp: pc && pc.remoteDescription ? pc.remoteDescription.sdp : null,
        };
    }

    window.sb = {join, addMic, unmute, mute, shareScreen, stopScreen, leave, stats, videoFrames, summary, diagnostics};
    document.getElementById('status').textContent = `${sessionID}: ready`;
})();
