// Switchboard demo page: sign in, channels and messages, and calls (start/join/leave, mute,
// raised hands, reactions, screen share, 1-1 video in direct messages, the call thread).
//
// The chat host (signaling/demo/server.py) decides who may do what and relays WebRTC signaling
// between this page's RtcClient (rtc.js) and the SFU. Test hooks: data-* attributes on the
// participant rows and notices, and window.demo.{state, stats, videoFrames}.
'use strict';

(() => {
    const {RtcClient} = window.SwitchboardRTC;
    const $ = (id) => document.getElementById(id);

    const S = {
        ws: null,
        nextId: 1,
        pending: new Map(),
        me: null,
        users: new Map(),
        channels: new Map(),
        current: null,
        posts: new Map(),
        rtcConf: null,
        reactions: {},
        call: null,            // our call: {channelId, sessionId, rtc, mic, micSender, muted, ...}
        logs: [],
    };

    function log(level, ...args) {
        const line = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
        S.logs.push(`${new Date().toISOString().slice(11, 23)} ${level} ${line}`);
        if (S.logs.length > 200) {
            S.logs.splice(0, S.logs.length - 200);
        }
        if (level === 'error' || level === 'warn') {
            console.warn(line);
        }
    }

    // Build a DOM element: h('div', {class: 'x', onclick: fn, dataset: {a: 1}}, child, 'text').
    function h(tag, attrs, ...children) {
        const el = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false) {
                continue;
            }
            if (k === 'dataset') {
                Object.assign(el.dataset, v);
            } else if (k.startsWith('on')) {
                el.addEventListener(k.slice(2), v);
            } else if (k === 'class') {
                el.className = v;
            } else {
                el.setAttribute(k, v === true ? '' : v);
            }
        }
        for (const c of children.flat()) {
            if (c !== null && c !== undefined && c !== false) {
                el.append(c instanceof Node ? c : document.createTextNode(String(c)));
            }
        }
        return el;
    }

    // Small line icons of our own (status glyphs must not depend on an emoji font).
    const ICONS = {
        mic: '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M6 11a6 6 0 0 0 12 0M12 17v4M9 21h6"/>',
        micOff: '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M6 11a6 6 0 0 0 12 0M12 17v4M9 21h6M4 4l16 16"/>',
        hand: '<path d="M8 13V6a1.5 1.5 0 0 1 3 0v5M11 11V4.5a1.5 1.5 0 0 1 3 0V11M14 11V6a1.5 1.5 0 0 1 3 0v7a7 7 0 0 1-7 7 6 6 0 0 1-5-3l-2.5-4a1.5 1.5 0 0 1 2.5-1.6L8 14"/>',
        screen: '<rect x="3" y="4" width="18" height="12" rx="1.5"/><path d="M8 20h8M12 16v4"/>',
        camera: '<rect x="3" y="7" width="12" height="10" rx="1.5"/><path d="M15 11l6-3v8l-6-3z"/>',
        phone: '<path d="M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z"/>',
        lock: '<rect x="5" y="11" width="14" height="9" rx="1.5"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/>',
    };
    function icon(name, title) {
        const span = document.createElement('span');
        span.className = `icon icon-${name}`;
        if (title) {
            span.title = title;
        }
        span.innerHTML = `<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" ` +
            `stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name]}</svg>`;
        return span;
    }

    const userName = (id) => (S.users.get(id) ? S.users.get(id).username : 'someone');
    const channelLabel = (ch) => (ch.type === 'D' ? `@${ch.display_name.split(', ').filter((n) => n !== S.me.username)[0] || ch.display_name}` : `~${ch.name}`);

    // ------------------------------------------------------------------ notices

    function notice(code, text, {sticky = true} = {}) {
        const box = $('notices');
        box.querySelectorAll(`.notice[data-code="${code}"]`).forEach((n) => n.remove());
        const n = h('div', {class: `notice notice-${code}`, dataset: {code}, role: 'alert'},
            h('span', {class: 'notice-text'}, text),
            h('button', {class: 'link-button', onclick: () => n.remove(), title: 'Dismiss'}, '\u00d7'));
        box.append(n);
        if (!sticky) {
            setTimeout(() => n.remove(), 8000);
        }
        log('info', `notice ${code}: ${text}`);
    }

    function clearNotice(code) {
        $('notices').querySelectorAll(`.notice[data-code="${code}"]`).forEach((n) => n.remove());
    }

    // ------------------------------------------------------------------ WebSocket

    function connect(name) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
            S.ws = ws;
            let opened = false;
            ws.onopen = () => {
                opened = true;
                request('login', {name}).then(resolve, reject);
            };
            ws.onmessage = (ev) => {
                let msg;
                try {
                    msg = JSON.parse(ev.data);
                } catch (err) {
                    log('warn', 'bad message from the host', err);
                    return;
                }
                if (msg.type === 'reply') {
                    const p = S.pending.get(msg.id);
                    if (p) {
                        S.pending.delete(msg.id);
                        if (msg.ok) {
                            p.resolve(msg.data);
                        } else {
                            const err = new Error(msg.error);
                            err.code = msg.code;
                            p.reject(err);
                        }
                    }
                    return;
                }
                onEvent(msg);
            };
            ws.onclose = () => {
                if (S.ws !== ws) {
                    return;
                }
                S.pending.forEach((p) => p.reject(Object.assign(new Error('disconnected from the demo server'), {code: 'disconnected'})));
                S.pending.clear();
                if (!opened) {
                    reject(new Error('cannot reach the demo server'));
                    return;
                }
                endCall(null);
                if (S.me) {
                    notice('disconnected', 'The connection to the demo server was lost. Reload the page to sign in again.');
                }
            };
        });
    }

    function send(obj) {
        if (S.ws && S.ws.readyState === WebSocket.OPEN) {
            S.ws.send(JSON.stringify(obj));
        }
    }

    function request(type, payload = {}) {
        const id = S.nextId++;
        return new Promise((resolve, reject) => {
            S.pending.set(id, {resolve, reject});
            send({type, id, ...payload});
        });
    }

    // ------------------------------------------------------------------ sign in

    async function showLogin(error) {
        $('app').hidden = true;
        $('login').hidden = false;
        $('login-error').textContent = error || '';
        const list = $('login-users');
        list.replaceChildren();
        try {
            const users = await (await fetch('/api/users')).json();
            for (const u of users) {
                const tags = [u.role === 'admin' ? 'admin' : '', u.role === 'guest' ? 'guest' : '', u.active ? '' : 'deactivated'].filter(Boolean);
                list.append(h('button', {class: `user-pick ${u.active ? '' : 'inactive'}`, dataset: {user: u.username},
                    onclick: () => login(u.username)},
                h('span', {class: 'avatar'}, u.username[0].toUpperCase()), u.username,
                tags.length ? h('small', {}, ` ${tags.join(', ')}`) : null));
            }
        } catch (err) {
            $('login-error').textContent = `Cannot reach the demo server: ${err.message}`;
        }
    }

    async function login(name) {
        if (S.ws) {
            S.ws.onclose = null;
            S.ws.close();
            S.ws = null;
        }
        let hello;
        try {
            hello = await connect(name);
        } catch (err) {
            showLogin(err.message);
            return;
        }
        S.me = hello.me;
        S.rtcConf = hello.rtc;
        S.reactions = hello.reactions;
        S.users = new Map(hello.users.map((u) => [u.id, u]));
        setChannels(hello.channels);
        sessionStorage.setItem('switchboard-demo-user', S.me.username);
        $('login').hidden = true;
        $('app').hidden = false;
        $('me-name').textContent = `@${S.me.username}${S.me.role === 'guest' ? ' (guest)' : ''}`;
        renderReactBar();
        if (!window.isSecureContext || !navigator.mediaDevices) {
            notice('insecure', 'This page is not a secure context (plain HTTP on an address other than localhost), so the browser ' +
                'blocks the microphone and screen sharing. Start the demo with --tls and open its https:// address.');
        }
        await route();
    }

    // Where the address bar points: /channels/<id>[?join_call=true] (call links) or the first channel.
    async function route() {
        const m = location.pathname.match(/^\/channels\/([a-z0-9]{26})$/);
        const joinCall = new URLSearchParams(location.search).get('join_call') === 'true';
        if (m && joinCall) {
            try {
                await request('resolve_link', {channel_id: m[1]});
            } catch (err) {
                notice('link_invalid', err.message);
                history.replaceState(null, '', '/');
                await openDefault();
                return;
            }
            await openChannel(m[1]);
            await startOrJoin(m[1]);
            return;
        }
        if (m && S.channels.has(m[1])) {
            await openChannel(m[1]);
            return;
        }
        await openDefault();
    }

    async function openDefault() {
        const chans = [...S.channels.values()].filter((c) => c.member && !c.archived);
        const first = chans.find((c) => c.name === 'town-square') || chans[0];
        if (first) {
            await openChannel(first.id);
        } else {
            renderChannel();
            notice('no_channels', 'You are not a member of any channel yet. Ask a member to add you (for example /invite @' +
                `${S.me.username} in their channel).`);
        }
    }

    // ------------------------------------------------------------------ channels and posts

    function setChannels(list) {
        const prev = S.channels;
        S.channels = new Map(list.map((c) => [c.id, c]));
        // keep call states that arrived separately in sync with the new list
        for (const [id, c] of S.channels) {
            if (!('call' in c) && prev.has(id)) {
                c.call = prev.get(id).call;
            }
        }
        renderSidebar();
    }

    function renderSidebar() {
        const nav = $('channel-list');
        nav.replaceChildren();
        const groups = [
            ['Channels', (c) => c.type !== 'D' && !c.archived],
            ['Direct messages', (c) => c.type === 'D'],
            ['Archived', (c) => c.archived],
        ];
        for (const [title, pick] of groups) {
            const chans = [...S.channels.values()].filter(pick);
            if (!chans.length) {
                continue;
            }
            nav.append(h('h4', {}, title));
            for (const c of chans) {
                const mark = c.type === 'P' ? icon('lock') : c.type === 'D' ? '@' : '#';
                nav.append(h('a', {
                    href: `/channels/${c.id}`,
                    class: `chan ${c.id === S.current ? 'active' : ''} ${c.archived ? 'archived' : ''}`,
                    dataset: {channel: c.name, channelId: c.id},
                    onclick: (ev) => {
                        ev.preventDefault();
                        openChannel(c.id);
                    },
                }, h('span', {class: 'chan-icon'}, mark), c.type === 'D' ? channelLabel(c).slice(1) : c.display_name,
                c.call ? h('span', {class: 'chan-call', title: 'call in progress'}, icon('phone'), ` ${c.call.participants.length}`) : null));
            }
        }
    }

    async function openChannel(id) {
        let data;
        try {
            data = await request('open_channel', {channel_id: id});
        } catch (err) {
            notice('forbidden', err.message);
            return;
        }
        S.channels.set(id, data.channel);
        S.posts.set(id, data.posts);
        S.current = id;
        if (location.pathname !== `/channels/${id}`) {
            history.pushState(null, '', `/channels/${id}`);
        }
        renderSidebar();
        renderChannel();
    }

    function renderChannel() {
        const ch = S.channels.get(S.current);
        const main = $('channel');
        main.dataset.channelId = ch ? ch.id : '';
        main.dataset.channelName = ch ? ch.name : '';
        $('channel-name').replaceChildren(...(ch ? [ch.type === 'P' ? icon('lock') : ch.type === 'D' ? '' : '# ',
            ch.type === 'D' ? channelLabel(ch) : ch.display_name] : []));
        $('channel-purpose').textContent = ch ? (ch.archived ? 'Archived: read-only' : ch.purpose) : '';
        $('message').disabled = !ch || ch.archived || !ch.member;
        renderCallButton();
        renderPosts();
    }

    function renderCallButton() {
        const ch = S.channels.get(S.current);
        const btn = $('btn-start-call');
        const summary = $('call-summary');
        const inThisCall = S.call && ch && S.call.channelId === ch.id;
        btn.hidden = !ch || ch.archived || inThisCall;
        $('btn-link').hidden = !ch || ch.archived;
        if (ch && ch.call) {
            btn.textContent = 'Join call';
            summary.textContent = `Call in progress \u00b7 ${ch.call.participants.length} participant${ch.call.participants.length === 1 ? '' : 's'}`;
        } else {
            btn.textContent = 'Start call';
            summary.textContent = '';
        }
    }

    function postView(p, {thread = false} = {}) {
        const posts = S.posts.get(p.channel_id) || [];
        if (p.type === 'call') {
            const ended = p.props.end_at > 0;
            const replies = posts.filter((x) => x.root_id === p.id).length;
            const who = (p.props.participants || []).map(userName).join(', ');
            return h('div', {class: `post post-call ${ended ? 'ended' : 'live'}`, dataset: {postId: p.id}},
                h('div', {class: 'call-card'},
                    h('span', {class: 'call-icon'}, icon('phone')),
                    h('div', {},
                        h('strong', {}, ended ? 'Call ended' : `@${userName(p.user_id)} started a call`),
                        h('div', {class: 'meta'}, ended ? `lasted ${duration(p.props.end_at - p.props.start_at)}` : `started ${time(p.props.start_at)}`,
                            who ? ` \u00b7 ${who}` : '', replies ? ` \u00b7 ${replies} repl${replies === 1 ? 'y' : 'ies'} in the call thread` : '')),
                    !ended && !(S.call && S.call.channelId === p.channel_id)
                        ? h('button', {class: 'primary', onclick: () => startOrJoin(p.channel_id)}, 'Join call') : null));
        }
        if (p.type === 'system' || p.type === 'ephemeral') {
            return h('div', {class: `post post-system ${p.type}`}, h('span', {class: 'meta'}, time(p.create_at)), ' ', linkify(p.message));
        }
        return h('div', {class: `post ${thread ? 'in-thread' : ''}`, dataset: {postId: p.id}},
            h('span', {class: 'avatar'}, userName(p.user_id)[0].toUpperCase()),
            h('div', {class: 'post-body'},
                h('div', {}, h('strong', {}, userName(p.user_id)), h('span', {class: 'meta'}, ` ${time(p.create_at)}`),
                    p.root_id && !thread ? h('span', {class: 'meta'}, ' \u00b7 in the call thread') : null),
                h('div', {class: 'text'}, linkify(p.message))));
    }

    function linkify(text) {
        const parts = String(text).split(/(https?:\/\/\S+)/);
        return parts.map((s, i) => (i % 2 ? h('a', {href: s, class: 'call-link'}, s) : s));
    }

    const time = (ms) => new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
    const duration = (ms) => {
        const s = Math.max(0, Math.round(ms / 1000));
        return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
    };

    function renderPosts() {
        const box = $('posts');
        box.replaceChildren();
        const posts = S.posts.get(S.current) || [];
        for (const p of posts) {
            box.append(postView(p));
        }
        if (!posts.length) {
            box.append(h('div', {class: 'post post-system'}, 'No messages yet.'));
        }
        box.scrollTop = box.scrollHeight;
        renderCallChat();
    }

    function ephemeral(text) {
        const list = S.posts.get(S.current) || [];
        list.push({id: `eph-${Date.now()}`, channel_id: S.current, user_id: '', message: text, create_at: Date.now(),
            root_id: '', type: 'ephemeral', props: {}});
        S.posts.set(S.current, list);
        renderPosts();
    }

    async function submitMessage(text, rootId) {
        text = text.trim();
        if (!text) {
            return;
        }
        if (text.startsWith('/call')) {
            await callCommand(text.split(/\s+/)[1] || '');
            return;
        }
        const channelId = rootId ? S.call.channelId : S.current;
        try {
            if (text.startsWith('/') && !rootId) {
                const res = await request('command', {channel_id: channelId, text});
                if (res.open_channel) {
                    await openChannel(res.open_channel);
                }
                if (res.text) {
                    ephemeral(res.text);
                }
                return;
            }
            await request('post', {channel_id: channelId, message: text, root_id: rootId || ''});
        } catch (err) {
            notice('forbidden', err.message, {sticky: false});
        }
    }

    async function callCommand(sub) {
        const ch = S.channels.get(S.current);
        switch (sub) {
        case 'start':
        case 'join':
            await startOrJoin(ch.id);
            break;
        case 'leave':
            await leaveCall();
            break;
        case 'link':
            await copyLink();
            break;
        case 'end':
            try {
                await request('call_end', {channel_id: ch.id});
            } catch (err) {
                notice('forbidden', err.message, {sticky: false});
            }
            break;
        default:
            ephemeral('Usage: /call start | join | leave | link | end');
        }
    }

    async function copyLink() {
        let link;
        try {
            link = (await request('call_link', {channel_id: S.current})).link;
        } catch (err) {
            notice('forbidden', err.message, {sticky: false});
            return;
        }
        let copied = false;
        try {
            await navigator.clipboard.writeText(link);
            copied = true;
        } catch (err) {
            log('info', 'clipboard unavailable', err);
        }
        ephemeral(`Call link for ${channelLabel(S.channels.get(S.current))}${copied ? ' (copied)' : ''}: ${link}`);
    }

    // ------------------------------------------------------------------ calls

    async function startOrJoin(channelId) {
        if (S.call) {
            if (S.call.channelId === channelId) {
                return;
            }
            await leaveCall();
        }
        let joined;
        try {
            joined = await request('call_join', {channel_id: channelId});
        } catch (err) {
            notice(err.code === 'call_full' ? 'call_full' : 'call_refused', err.message);
            return;
        }
        ['call_full', 'call_refused', 'media_timeout', 'call_closed'].forEach(clearNotice);
        const call = {
            channelId,
            sessionId: joined.session_id,
            rtc: null,
            mic: null,
            micSender: null,
            muted: true,
            hand: false,
            screen: null,
            camera: null,
            remote: new Map(),
            state: 'connecting',
        };
        S.call = call;
        const ch = S.channels.get(channelId);
        if (ch) {
            ch.call = joined.call;
        }
        const rtc = new RtcClient({
            iceServers: S.rtcConf.ice_servers,
            connectTimeoutMs: S.rtcConf.media_timeout_ms,
            send: (kind, data) => send({type: kind, data}),
            log,
        });
        call.rtc = rtc;
        rtc.on('connect', () => {
            call.state = 'connected';
            clearNotice('media_timeout');
            renderCall();
        });
        rtc.on('timeout', (ms) => {
            if (S.call !== call) {
                return;
            }
            const {udp_port: udp, tcp_port: tcp} = S.rtcConf;
            notice('media_timeout', `Could not connect the call's media within ${Math.round(ms / 1000)} s. ` +
                `The browser must reach the server on UDP port ${udp}${tcp ? ` (or TCP port ${tcp} as a fallback)` : ''}: ` +
                'open it for incoming traffic in the server\'s firewall, or configure a TURN server ' +
                '(switchboard demo --ice-server turn:HOST:3478 --ice-username U --ice-credential P).');
            leaveCall();
        });
        rtc.on('close', (err) => {
            if (S.call === call && err) {
                notice('media_failed', `The call's media connection failed (${err.message}).`);
                leaveCall();
            }
        });
        rtc.on('error', (err) => log('error', 'rtc', err));
        rtc.on('track', (t) => addRemote(call, t));
        rtc.on('trackremoved', (t) => removeRemote(call, t.mid));
        rtc.start();
        renderAll();
        getMicrophone(call);
    }

    async function getMicrophone(call) {
        if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
            call.micError = 'insecure';
            renderCall();
            return;
        }
        try {
            const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: false});
            if (S.call !== call) {
                stream.getTracks().forEach((t) => t.stop());
                return;
            }
            call.mic = {stream, track: stream.getAudioTracks()[0]};
        } catch (err) {
            call.micError = err.name || 'error';
            if (S.call === call) {
                const denied = err.name === 'NotAllowedError' || err.name === 'SecurityError';
                notice('mic_denied', denied
                    ? 'Microphone access was denied, so you joined muted and can only listen. To speak, allow the ' +
                      'microphone for this site in the browser (the icon in the address bar), then leave and join the call again.'
                    : `No microphone is available (${err.name}: ${err.message}). You can listen, but not speak.`);
            }
        }
        renderCall();
    }

    async function toggleMute() {
        const call = S.call;
        if (!call) {
            return;
        }
        if (call.muted) {
            if (!call.mic) {
                notice('mic_denied', call.micError === 'insecure'
                    ? 'The browser blocks the microphone on this insecure page: use the https:// address (switchboard demo --tls).'
                    : 'Microphone access was denied, so you cannot unmute. Allow the microphone for this site and rejoin the call.');
                return;
            }
            try {
                if (!call.micSender) {
                    call.micSender = await call.rtc.addAudio(call.mic.track, call.mic.stream);
                } else {
                    await call.micSender.replaceTrack(call.mic.track);
                }
                call.muted = false;
                await request('unmute');
            } catch (err) {
                notice('call_error', `Could not unmute: ${err.message}`, {sticky: false});
            }
        } else {
            call.muted = true;
            if (call.micSender) {
                await call.micSender.replaceTrack(null);
            }
            try {
                await request('mute');
            } catch (err) {
                log('warn', 'mute', err);
            }
        }
        renderCall();
    }

    async function toggleHand() {
        if (!S.call) {
            return;
        }
        const raise = !S.call.hand;
        try {
            await request(raise ? 'raise_hand' : 'lower_hand');
            S.call.hand = raise;
        } catch (err) {
            notice('call_error', err.message, {sticky: false});
        }
        renderCall();
    }

    async function react(name) {
        if (S.call) {
            try {
                await request('react', {name});
            } catch (err) {
                notice('call_error', err.message, {sticky: false});
            }
        }
    }

    async function toggleScreen() {
        const call = S.call;
        if (!call) {
            return;
        }
        if (call.screen) {
            await stopScreen(call);
            return;
        }
        if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
            notice('call_error', 'Screen sharing needs a secure context (https:// or localhost) and a desktop browser.');
            return;
        }
        let stream;
        try {
            stream = await navigator.mediaDevices.getDisplayMedia({video: {frameRate: 15}, audio: false});
        } catch (err) {
            notice('call_error', `Screen sharing was cancelled or denied (${err.name}).`, {sticky: false});
            return;
        }
        const track = stream.getVideoTracks()[0];
        try {
            await request('screen_on', {data: {screenStreamID: stream.id}});
        } catch (err) {
            stream.getTracks().forEach((t) => t.stop());
            notice('screen_busy', err.message, {sticky: false});
            return;
        }
        call.screen = {stream, track, sender: null};
        track.addEventListener('ended', () => {
            if (call.screen && call.screen.track === track) {
                stopScreen(call);
            }
        });
        renderCall();
        try {
            call.screen.sender = await call.rtc.addVideo(track, stream, {maxBitrate: 1000000, maxFramerate: 10});
        } catch (err) {
            notice('call_error', `Could not share the screen: ${err.message}`, {sticky: false});
            await stopScreen(call);
        }
    }

    async function stopScreen(call) {
        const screen = call.screen;
        if (!screen) {
            return;
        }
        call.screen = null;
        screen.stream.getTracks().forEach((t) => t.stop());
        if (S.call === call) {
            request('screen_off').catch((err) => log('warn', 'screen_off', err));
            if (screen.sender) {
                await call.rtc.removeSender(screen.sender).catch((err) => log('warn', 'remove screen', err));
            }
        }
        renderCall();
    }

    async function toggleCamera() {
        const call = S.call;
        if (!call) {
            return;
        }
        if (call.camera) {
            const cam = call.camera;
            call.camera = null;
            cam.stream.getTracks().forEach((t) => t.stop());
            request('video_off').catch((err) => log('warn', 'video_off', err));
            if (cam.sender) {
                await call.rtc.removeSender(cam.sender).catch((err) => log('warn', 'remove camera', err));
            }
            renderCall();
            return;
        }
        let stream;
        try {
            stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 360}, audio: false});
        } catch (err) {
            notice('camera_denied', `Camera access was denied or no camera is available (${err.name}).`, {sticky: false});
            return;
        }
        try {
            await request('video_on', {data: {videoStreamID: stream.id}});
        } catch (err) {
            stream.getTracks().forEach((t) => t.stop());
            notice('call_error', err.message, {sticky: false});
            return;
        }
        call.camera = {stream, sender: null};
        renderCall();
        try {
            call.camera.sender = await call.rtc.addVideo(stream.getVideoTracks()[0], stream, {maxBitrate: 800000, maxFramerate: 15});
        } catch (err) {
            notice('call_error', `Could not start the camera: ${err.message}`, {sticky: false});
        }
    }

    async function leaveCall() {
        const call = S.call;
        if (!call) {
            return;
        }
        endCall(call);
        try {
            await request('call_leave');
        } catch (err) {
            log('info', 'leave', err);
        }
    }

    // Release everything of our call (the host already knows, or is told by leaveCall).
    function endCall(call) {
        const cur = S.call;
        if (!cur || (call && cur !== call)) {
            return;
        }
        S.call = null;
        cur.rtc.close();
        for (const m of [cur.mic, cur.screen, cur.camera]) {
            if (m) {
                m.stream.getTracks().forEach((t) => t.stop());
            }
        }
        for (const mid of [...cur.remote.keys()]) {
            removeRemote(cur, mid);
        }
        renderAll();
    }

    function senderUser(call, sessionId) {
        const ch = S.channels.get(call.channelId);
        const p = ch && ch.call ? ch.call.participants.find((x) => x.session_id === sessionId) : null;
        return p ? userName(p.user_id) : '';
    }

    function addRemote(call, {mid, track, info}) {
        const stream = new MediaStream([track]);
        let el;
        if (info.type === 'voice' || info.type === 'screen-audio') {
            el = h('audio', {autoplay: true, dataset: {mid, sender: info.sender_id, type: info.type}});
            $('remote-audio').append(el);
        } else if (info.type === 'screen') {
            el = $('screen-video');
            el.dataset.mid = mid;
            el.dataset.sender = info.sender_id;
        } else {
            el = h('video', {autoplay: true, playsinline: true, muted: true, class: 'tile', dataset: {mid, sender: info.sender_id, type: info.type}});
            $('videos').append(h('figure', {class: 'tile-box', dataset: {mid}}, el, h('figcaption', {}, senderUser(call, info.sender_id))));
        }
        el.srcObject = stream;
        const played = el.play();
        if (played && played.catch) {
            played.catch((err) => log('warn', `play ${info.type}`, err));
        }
        call.remote.set(mid, {info, el, track});
        renderCall();
    }

    function removeRemote(call, mid) {
        const r = call.remote.get(mid);
        if (!r) {
            return;
        }
        call.remote.delete(mid);
        if (r.info.type === 'screen') {
            if (r.el.dataset.mid === mid) {
                r.el.srcObject = null;
                delete r.el.dataset.mid;
            }
        } else if (r.info.type === 'video') {
            const box = r.el.closest('figure');
            (box || r.el).remove();
        } else {
            r.el.srcObject = null;
            r.el.remove();
        }
        renderCall();
    }

    // ------------------------------------------------------------------ call panel

    function renderReactBar() {
        const bar = $('react-bar');
        bar.replaceChildren(...Object.entries(S.reactions).map(([name, emoji]) => h('button', {
            class: 'btn-react', dataset: {name}, title: `:${name}:`, onclick: () => react(name),
        }, emoji)));
    }

    function renderCall() {
        const panel = $('call');
        const call = S.call;
        if (!call) {
            panel.hidden = true;
            panel.dataset.state = 'none';
            panel.dataset.channelId = '';
            return;
        }
        const ch = S.channels.get(call.channelId);
        const state = ch && ch.call ? ch.call : {participants: [], screen_session: null};
        panel.hidden = false;
        panel.dataset.state = call.state;
        panel.dataset.channelId = call.channelId;
        $('call-title').textContent = ch ? `Call in ${channelLabel(ch)}` : 'Call';
        $('call-status').textContent = call.state === 'connected' ? 'connected' : 'connecting\u2026';
        const list = $('participants');
        list.replaceChildren();
        const sorted = [...state.participants].sort((a, b) => (b.hand_raised_at ? 1 : 0) - (a.hand_raised_at ? 1 : 0) ||
            (a.hand_raised_at - b.hand_raised_at));
        for (const p of sorted) {
            const name = userName(p.user_id);
            const me = p.session_id === call.sessionId;
            list.append(h('li', {
                class: `participant ${p.speaking ? 'speaking' : ''} ${p.muted ? 'muted' : ''}`,
                dataset: {user: name, session: p.session_id, muted: String(p.muted), speaking: String(p.speaking),
                    hand: String(p.hand_raised_at > 0), screen: String(p.screen), video: String(p.video)},
            },
            h('span', {class: 'avatar'}, name[0].toUpperCase()),
            h('span', {class: 'pname'}, name, me ? ' (you)' : ''),
            p.hand_raised_at ? h('span', {class: 'hand'}, icon('hand', 'raised hand')) : null,
            p.screen ? h('span', {class: 'badge'}, icon('screen', 'sharing the screen')) : null,
            p.video ? h('span', {class: 'badge'}, icon('camera', 'camera on')) : null,
            h('span', {class: 'mic'}, icon(p.muted ? 'micOff' : 'mic', p.muted ? 'muted' : 'unmuted')),
            h('span', {class: 'reaction-slot'})));
        }
        const mute = $('btn-mute');
        mute.textContent = call.muted ? 'Unmute' : 'Mute';
        mute.classList.toggle('active', !call.muted);
        mute.disabled = !call.mic && call.micError === undefined;
        $('btn-hand').textContent = call.hand ? 'Lower hand' : 'Raise hand';
        $('btn-hand').classList.toggle('active', call.hand);
        const otherSharing = state.screen_session && state.screen_session !== call.sessionId;
        const screenBtn = $('btn-screen');
        screenBtn.textContent = call.screen ? 'Stop sharing' : 'Share screen';
        screenBtn.disabled = Boolean(otherSharing) && !call.screen;
        screenBtn.title = otherSharing ? 'Someone else is sharing their screen' : 'Share your screen';
        const camBtn = $('btn-camera');
        camBtn.hidden = !ch || ch.type !== 'D';
        camBtn.textContent = call.camera ? 'Camera off' : 'Camera';
        // the shared screen
        const view = $('screen-view');
        const video = $('screen-video');
        const sharing = Boolean(video.dataset.mid) || Boolean(call.screen);
        view.hidden = !sharing;
        if (call.screen) {
            $('screen-caption').textContent = 'You are sharing your screen';
            if (video.srcObject !== call.screen.stream) {
                video.srcObject = call.screen.stream;
            }
        } else if (video.dataset.mid) {
            $('screen-caption').textContent = `${senderUser(call, video.dataset.sender) || 'Someone'} is sharing their screen`;
        } else if (video.srcObject) {
            video.srcObject = null;
        }
        renderCallChat();
    }

    function renderCallChat() {
        const box = $('call-chat');
        const call = S.call;
        if (!call) {
            return;
        }
        const ch = S.channels.get(call.channelId);
        const threadId = ch && ch.call ? ch.call.thread_id : null;
        const posts = (S.posts.get(call.channelId) || []).filter((p) => threadId && p.root_id === threadId);
        box.replaceChildren(...posts.map((p) => postView(p, {thread: true})));
        if (!posts.length) {
            box.append(h('div', {class: 'meta'}, 'Messages here go to the call\u2019s thread.'));
        }
        box.scrollTop = box.scrollHeight;
    }

    function showReaction(msg) {
        if (!S.call || S.call.channelId !== msg.channel_id) {
            return;
        }
        const name = userName(msg.user_id);
        const item = h('div', {class: 'reaction', dataset: {user: name, name: msg.name}}, `${msg.emoji} ${name}`);
        $('reactions').append(item);
        setTimeout(() => item.remove(), 10000);
        const slot = document.querySelector(`.participant[data-session="${msg.session_id}"] .reaction-slot`);
        if (slot) {
            slot.textContent = msg.emoji;
            setTimeout(() => {
                if (slot.textContent === msg.emoji) {
                    slot.textContent = '';
                }
            }, 6000);
        }
    }

    function renderAll() {
        renderSidebar();
        renderChannel();
        renderCall();
    }

    // ------------------------------------------------------------------ host events

    function onEvent(msg) {
        switch (msg.type) {
        case 'channels':
            setChannels(msg.channels);
            if (S.current && !S.channels.has(S.current)) {
                openDefault();
            } else {
                renderChannel();
            }
            break;
        case 'posted': {
            const list = S.posts.get(msg.post.channel_id);
            if (list && !list.some((p) => p.id === msg.post.id)) {
                list.push(msg.post);
            }
            if (msg.post.channel_id === S.current || (S.call && msg.post.channel_id === S.call.channelId)) {
                renderPosts();
            }
            break;
        }
        case 'post_edited': {
            const list = S.posts.get(msg.post.channel_id);
            if (list) {
                const i = list.findIndex((p) => p.id === msg.post.id);
                if (i >= 0) {
                    list[i] = msg.post;
                } else {
                    list.push(msg.post);
                }
                renderPosts();
            }
            break;
        }
        case 'call': {
            const ch = S.channels.get(msg.channel_id);
            if (ch) {
                ch.call = msg.call;
            }
            renderSidebar();
            renderCallButton();
            renderCall();
            break;
        }
        case 'reaction':
            showReaction(msg);
            break;
        case 'user':
            S.users.set(msg.user.id, msg.user);
            break;
        case 'signal':
            if (S.call) {
                try {
                    S.call.rtc.signal(JSON.parse(msg.data));
                } catch (err) {
                    log('error', 'bad signal', err);
                }
            }
            break;
        case 'call_closed':
            if (S.call) {
                notice('call_closed', `You left the call: ${msg.reason}`);
                endCall(S.call);
            }
            break;
        case 'signed_out':
            endCall(null);
            S.me = null;
            if (S.ws) {
                S.ws.onclose = null;
            }
            showLogin(msg.reason);
            break;
        case 'error':
            log('warn', 'host error', msg.error);
            break;
        default:
            log('info', 'unhandled event', msg.type);
        }
    }

    // ------------------------------------------------------------------ wiring

    $('login-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const name = $('login-name').value.trim();
        if (name) {
            login(name);
        }
    });
    $('btn-switch').addEventListener('click', () => {
        endCall(null);
        if (S.ws) {
            S.ws.onclose = null;
            S.ws.close();
            S.ws = null;
        }
        S.me = null;
        sessionStorage.removeItem('switchboard-demo-user');
        showLogin('');
    });
    $('composer').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const text = $('message').value;
        $('message').value = '';
        submitMessage(text, '');
    });
    $('call-chat-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const ch = S.call ? S.channels.get(S.call.channelId) : null;
        const text = $('call-chat-input').value;
        $('call-chat-input').value = '';
        if (ch && ch.call) {
            submitMessage(text, ch.call.thread_id);
        }
    });
    $('dm-form').addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const name = $('dm-name').value.trim().replace(/^@/, '');
        $('dm-name').value = '';
        if (!name) {
            return;
        }
        try {
            const res = await request('direct', {username: name});
            await openChannel(res.channel_id);
        } catch (err) {
            notice('forbidden', err.message, {sticky: false});
        }
    });
    $('btn-start-call').addEventListener('click', () => startOrJoin(S.current));
    $('btn-link').addEventListener('click', () => copyLink());
    $('btn-mute').addEventListener('click', () => toggleMute());
    $('btn-hand').addEventListener('click', () => toggleHand());
    $('btn-screen').addEventListener('click', () => toggleScreen());
    $('btn-camera').addEventListener('click', () => toggleCamera());
    $('btn-leave').addEventListener('click', () => leaveCall());
    window.addEventListener('popstate', () => {
        if (S.me) {
            route();
        }
    });

    // ------------------------------------------------------------------ test and debugging hooks

    function frameInfo(v) {
        const info = {mid: v.dataset.mid || '', sender: v.dataset.sender || '', videoWidth: v.videoWidth,
            videoHeight: v.videoHeight, variance: 0};
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
                const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
                sum += y;
                sq += y * y;
            }
            const mean = sum / n;
            info.variance = sq / n - mean * mean;
        }
        return info;
    }

    window.demo = {
        state() {
            const call = S.call;
            return {
                me: S.me ? S.me.username : null,
                current: S.current,
                call: call ? {channelId: call.channelId, sessionId: call.sessionId, state: call.state, muted: call.muted,
                    mic: Boolean(call.mic), micError: call.micError || null, screen: Boolean(call.screen),
                    remote: [...call.remote].map(([mid, r]) => ({mid, type: r.info.type, user: senderUser(call, r.info.sender_id)})),
                    rtcStates: call.rtc.stateLog} : null,
                logs: S.logs.slice(-40),
            };
        },
        // getStats, with each inbound track labelled by its sender's user name and type.
        async stats() {
            const call = S.call;
            if (!call) {
                return null;
            }
            const st = await call.rtc.stats();
            const label = (x) => ({...x, user: x.info ? senderUser(call, x.info.sender_id) : '', type: x.info ? x.info.type : ''});
            return {...st, audioIn: st.audioIn.map(label), videoIn: st.videoIn.map(label)};
        },
        videoFrames() {
            return [...document.querySelectorAll('video')].filter((v) => v.dataset.mid).map(frameInfo);
        },
    };

    const remembered = sessionStorage.getItem('switchboard-demo-user');
    if (remembered) {
        login(remembered);
    } else {
        showLogin('');
    }
})();
