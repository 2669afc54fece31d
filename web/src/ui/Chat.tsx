import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import * as A from '../api';
import * as T from '../timeline';
import { groupIdOf, store } from '../store';
import { fmtTime, t } from '../i18n';
import type { Member, Message, PublicUser } from '../types';
import { attempt, useStore, useTick } from './hooks';
import { Avatar, ConvMenu } from './ConvList';
import { GroupInfo } from './Groups';
import { Icon } from './Icon';
import { AttachmentView, ForwardPicker, QuoteView, ReactionPicker, Reactions } from './Rich';

/** A system message's body as a sentence. */
export function systemText(m: Message): string {
  let b: any;
  try {
    b = JSON.parse(m.body ?? '{}');
  } catch {
    return t('sys_other');
  }
  // I am "You" as the one who acts, "you" as the one acted on.
  const n = (id: number, subject = false) => (id === store.me?.id ? t(subject ? 'you' : 'you_obj') : store.nameOf(id));
  const by = n(b.by ?? m.from, true);
  const user = b.user != null ? n(b.user, b.event === 'left') : '';
  const users = Array.isArray(b.users) ? b.users.map((u: number) => n(u, b.via === 'invite')).join(', ') : '';
  switch (b.event) {
    case 'renamed':
      return t('sys_renamed', { by, name: b.name });
    case 'announcement':
      return b.announcement ? t('sys_announcement', { by, text: b.announcement }) : t('sys_announcement_cleared', { by });
    case 'muted_all':
      return t('sys_muted_all', { by });
    case 'unmuted_all':
      return t('sys_unmuted_all', { by });
    case 'invite_policy':
      return t(b.invite_policy === 'admins' ? 'sys_policy_admins' : 'sys_policy_members', { by });
    case 'dissolved':
      return t('sys_dissolved', { by });
    case 'joined':
      return b.via === 'invite' ? t('sys_joined_invite', { users }) : t('sys_joined', { by, users });
    case 'removed':
      return t('sys_removed', { by, user });
    case 'left':
      return t('sys_left', { user });
    case 'owner_changed':
      return t('sys_owner_changed', { by, user });
    case 'admin_added':
      return t('sys_admin_added', { by, user });
    case 'admin_removed':
      return t('sys_admin_removed', { by, user });
    case 'muted':
      return t('sys_muted', { by, user, until: fmtTime(b.until) });
    case 'unmuted':
      return t('sys_unmuted', { by, user });
    default:
      return t('sys_other');
  }
}

const TICKS: Record<T.Tick, string> = { sending: '', failed: '!', sent: '✓', delivered: '✓✓', read: '✓✓' };

function Readers({ gid, seq }: { gid: number; seq: number }) {
  const [r, setR] = useState<{ read: PublicUser[]; unread: PublicUser[] } | null>(null);
  useEffect(() => {
    A.get(`/groups/${gid}/messages/${seq}/readers`).then(setR, (e) => store.say(String(e.message)));
  }, [gid, seq]);
  if (!r) return <div class="readers">{t('loading')}</div>;
  return (
    <div class="readers" data-testid="readers">
      <div>
        <b>{t('read_list')}:</b> {r.read.map((u) => store.nameOf(u.id)).join(', ') || '—'}
      </div>
      <div>
        <b>{t('unread_list')}:</b> {r.unread.map((u) => store.nameOf(u.id)).join(', ') || '—'}
      </div>
    </div>
  );
}

/** Scrolls the timeline to a message it holds, and flashes it. */
function jumpTo(seq: number) {
  const el = document.querySelector<HTMLElement>(`[data-testid="timeline"] [data-seq="${seq}"]`);
  if (!el) {
    store.say(t('quote_not_loaded'));
    return;
  }
  el.scrollIntoView({ block: 'center' });
  el.classList.add('flash');
  setTimeout(() => el.classList.remove('flash'), 1500);
}

function EditBox({ conv, m }: { conv: string; m: Message }) {
  const [text, setText] = useState(m.body ?? '');
  const done = () => {
    store.editing = null;
    store.changed();
  };
  const save = () => {
    const body = text.trim();
    if (body && body !== m.body) store.edit(conv, m.seq, body);
    done();
  };
  return (
    <form class="edit-box" onSubmit={(e) => (e.preventDefault(), save())}>
      <textarea
        value={text}
        rows={2}
        maxLength={store.maxChars}
        aria-label={t('edit')}
        data-testid="edit-input"
        ref={(el) => el?.focus()}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) (e.preventDefault(), save());
          else if (e.key === 'Escape') done();
        }}
      />
      <div class="row">
        <button class="primary" type="submit" data-testid="edit-save">
          {t('save')}
        </button>
        <button type="button" onClick={done}>
          {t('cancel')}
        </button>
      </div>
    </form>
  );
}

function Bubble({ conv, row, tl, group }: { conv: string; row: T.Row; tl: T.Timeline; group: boolean }) {
  const s = store;
  const me = s.me?.id ?? 0;
  const [menu, setMenu] = useState(false);
  const [readers, setReaders] = useState(false);
  const [picking, setPicking] = useState(false);
  const [forwarding, setForwarding] = useState(false);
  const [down, setDown] = useState(false); // open the menu below the bubble (near the top)
  const m = row.msg;
  const mine = m.from === me;
  if (row.kind === 'stored' && row.msg.kind === 'system') {
    return (
      <li class="sys" data-testid="system-msg" data-seq={row.msg.seq}>
        {systemText(row.msg)}
      </li>
    );
  }
  const stored = row.kind === 'stored' ? row.msg : null;
  const tick = mine ? T.tickOf(tl, row) : null;
  const recallable =
    stored && T.canRecall(stored, me, Date.now(), s.recallWindowMs) && !s.notRecallable.has(`${conv}#${stored.seq}`);
  const mentionsMe = stored && !mine && (stored.mention_all || stored.mentions?.includes(me));
  const editable = stored && T.canEdit(stored, me, Date.now(), s.editWindowMs);
  const editing = stored && s.editing === `${conv}#${stored.seq}`;
  const reply = row.kind === 'pending' ? row.msg.reply : stored?.reply;
  const att = row.kind === 'pending' ? row.msg.attachment : stored?.attachment;
  const fwd = row.kind === 'pending' ? row.msg.forwarded_from : stored?.forwarded_from;
  const body = (row.kind === 'pending' ? row.msg.body : stored?.body) ?? '';
  return (
    <li
      class={`msg ${mine ? 'mine' : ''} ${mentionsMe ? 'mentions-me' : ''}`}
      data-testid="msg"
      data-seq={stored?.seq ?? ''}
      data-id={m.id}
      data-tick={tick ?? ''}
    >
      {group && !mine && <div class="who small">{s.nameOf(m.from)}</div>}
      <div class="bubble">
        {reply && !stored?.recalled && <QuoteView q={reply} onJump={jumpTo} />}
        {fwd !== undefined && !stored?.recalled && (
          <div class="fwd small muted" data-testid="forwarded">
            {t('forwarded_from', { name: s.nameOf(fwd) })}
          </div>
        )}
        {att && !stored?.recalled && <AttachmentView a={att} />}
        {stored?.recalled ? (
          <i class="muted" data-testid="recalled">
            {t('recalled_msg')}
          </i>
        ) : editing ? (
          <EditBox conv={conv} m={stored} />
        ) : (
          (body || !att) && (
            <span class="body" data-testid="msg-body">
              {body}
            </span>
          )
        )}
        <span class="meta small">
          {stored?.edited_at && !stored.recalled && (
            <span class="edited" data-testid="edited" title={fmtTime(stored.edited_at)}>
              {t('edited')}{' '}
            </span>
          )}
          {fmtTime(m.ts)}
          {tick && (!group || tick === 'sending' || tick === 'failed') && (
            <span class={`tick ${tick}`} title={t('tick_' + tick)} aria-label={t('tick_' + tick)}>
              {' '}
              {tick === 'sending' ? <Icon name="clock" size={12} /> : TICKS[tick]}
            </span>
          )}
        </span>
        {stored && !stored.recalled && (
          <button class="icon-btn more" aria-label={t('menu')} data-testid="msg-menu-btn"
            onClick={(e) => {
              const box = e.currentTarget.closest('.timeline')?.getBoundingClientRect();
              setDown(!!box && e.currentTarget.getBoundingClientRect().top < box.top + box.height / 2);
              setMenu(!menu);
            }}
          >
            <Icon name="more" size={14} />
          </button>
        )}
      </div>
      {stored && <Reactions m={stored} />}
      {picking && stored && <ReactionPicker m={stored} onDone={() => setPicking(false)} />}
      {forwarding && stored && <ForwardPicker m={stored} onDone={() => setForwarding(false)} />}
      {row.kind === 'pending' && row.msg.failed && (
        <div class="small error">
          {t('err_' + row.msg.failed) !== 'err_' + row.msg.failed ? t('err_' + row.msg.failed) : row.msg.failed}{' '}
          <button class="link" onClick={() => s.retry(conv, m.id)}>
            {t('retry')}
          </button>{' '}
          <button class="link" onClick={() => s.discard(conv, m.id)}>
            {t('discard')}
          </button>
        </div>
      )}
      {menu && stored && (
        <div class={`menu ${down ? 'down' : ''}`} role="menu" data-testid="msg-menu">
          {stored.kind === 'text' && (
            <button role="menuitem" data-testid="reply" onClick={() => (s.replying.set(conv, stored), setMenu(false), s.changed())}>
              {t('reply')}
            </button>
          )}
          {editable && (
            <button role="menuitem" data-testid="edit" onClick={() => ((s.editing = `${conv}#${stored.seq}`), setMenu(false), s.changed())}>
              {t('edit')}
            </button>
          )}
          {stored.kind === 'text' && s.reactions.length > 0 && (
            <button role="menuitem" data-testid="react" onClick={() => (setPicking(!picking), setMenu(false))}>
              {t('react')}
            </button>
          )}
          {stored.kind === 'text' && (
            <button role="menuitem" data-testid="forward" onClick={() => (setForwarding(true), setMenu(false))}>
              {t('forward')}
            </button>
          )}
          {recallable && (
            <button role="menuitem" data-testid="recall" onClick={() => (s.recall(conv, stored.seq), setMenu(false))}>
              {t('recall')}
            </button>
          )}
          <button role="menuitem" data-testid="delete" onClick={() => (s.deleteForMe(conv, stored.seq), setMenu(false))}>
            {t('delete_for_me')}
          </button>
          {group && mine && stored.kind === 'text' && (
            <button role="menuitem" data-testid="read-by" onClick={() => (setReaders(!readers), setMenu(false))}>
              {t('read_by')}
            </button>
          )}
        </div>
      )}
      {readers && stored && <Readers gid={groupIdOf(conv) ?? 0} seq={stored.seq} />}
    </li>
  );
}

function Timeline({ conv }: { conv: string }) {
  const s = useStore();
  useTick(1_000); // the recall window closes by itself
  const ref = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const atBottom = useRef(true);
  const tl = s.timelines.get(conv);
  const rows = tl ? T.rows(tl) : [];
  const first = rows[0]?.msg.id;
  const last = rows.length ? rows[rows.length - 1].msg.id : '';
  const group = conv.startsWith('g:');

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (anchor.current) {
      // An older page was prepended: keep the same messages in view.
      el.scrollTop = el.scrollHeight - anchor.current.height + anchor.current.top;
      anchor.current = null;
    } else if (atBottom.current) el.scrollTop = el.scrollHeight;
  }, [first, last, rows.length]);

  async function onScroll() {
    const el = ref.current;
    if (!el || !tl) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    if (el.scrollTop < 120 && tl.hasOlder && !s.loading.has(conv + '<')) {
      anchor.current = { height: el.scrollHeight, top: el.scrollTop };
      const added = await s.loadOlder(conv).catch(() => false);
      if (!added) anchor.current = null;
    }
  }

  return (
    <div class="timeline" ref={ref} onScroll={() => void onScroll()} data-testid="timeline">
      {tl?.loaded && !tl.hasOlder && <p class="muted small center">{t('beginning')}</p>}
      {tl?.hasOlder && <p class="muted small center">{t('loading')}</p>}
      {!tl?.loaded && <p class="muted center">{t('loading')}</p>}
      <ul>
        {tl && rows.map((r) => <Bubble key={r.kind + r.msg.id + ('seq' in r.msg ? r.msg.seq : '')} conv={conv} row={r} tl={tl} group={group} />)}
      </ul>
    </div>
  );
}

interface Picker {
  query: string;
  start: number;
}

function Composer({ conv }: { conv: string }) {
  const s = useStore();
  const [text, setText] = useState('');
  const [picker, setPicker] = useState<Picker | null>(null);
  const chosen = useRef(new Map<string, number>()); // "@name" -> user id
  const area = useRef<HTMLTextAreaElement>(null);
  const gid = groupIdOf(conv);
  const group = gid ? s.groups.get(gid) : undefined;
  const members: Member[] = gid ? (s.members.get(gid) ?? []) : [];
  const me = s.me?.id ?? 0;
  const mine = members.find((m) => m.user.id === me);
  const staff = group?.my_role === 'owner' || group?.my_role === 'admin';
  const c = s.convs.get(conv);
  const peer = s.peerOf(conv);

  let blocked = '';
  if (gid) {
    if (c?.group?.dissolved || group?.dissolved) blocked = t('composer_dissolved');
    else if (!group) blocked = t('composer_left');
    else if (!staff && (group.mute_all || (mine?.muted_until ?? 0) > Date.now())) blocked = t('composer_muted');
  } else if (peer !== undefined && !s.friend(peer)) blocked = t('composer_not_friends');

  const allLabel = '@' + t('everyone');
  const options: { id: number | 'all'; label: string }[] = picker
    ? [
        ...(staff ? [{ id: 'all' as const, label: t('mention_all') }] : []),
        ...members
          .filter((m) => m.user.id !== me)
          .map((m) => ({ id: m.user.id, label: s.nameOf(m.user.id) }))
          .filter((o) => o.label.toLowerCase().includes(picker.query.toLowerCase())),
      ].slice(0, 8)
    : [];

  function onInput(v: string, caret: number) {
    setText(v);
    s.typed(conv);
    if (!gid) return;
    const before = v.slice(0, caret);
    const at = /(^|\s)@([^\s@]*)$/.exec(before);
    setPicker(at ? { query: at[2], start: caret - at[2].length - 1 } : null);
  }

  function pick(o: { id: number | 'all'; label: string }) {
    if (!picker) return;
    const token = o.id === 'all' ? allLabel : '@' + o.label;
    chosen.current.set(token, o.id === 'all' ? -1 : o.id);
    const caret = picker.start + 1 + picker.query.length;
    const next = text.slice(0, picker.start) + token + ' ' + text.slice(caret);
    setText(next);
    setPicker(null);
    area.current?.focus();
  }

  function submit() {
    const body = text.trim();
    if (!body) return;
    const mentions: number[] = [];
    let all = false;
    for (const [token, id] of chosen.current) {
      if (!body.includes(token)) continue;
      if (id === -1) all = true;
      else if (!mentions.includes(id)) mentions.push(id);
    }
    s.send(conv, body, mentions, all, { reply: s.replying.get(conv) });
    s.replying.delete(conv);
    chosen.current.clear();
    setText('');
    setPicker(null);
  }

  if (blocked) return <div class="composer blocked muted" data-testid="composer-blocked">{blocked}</div>;
  const replying = s.replying.get(conv);
  const up = s.uploading.get(conv);
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      {(replying || up) && (
        <div class="composer-bar small">
          {replying && (
            <div class="reply-bar" data-testid="reply-bar">
              <span class="grow clip">
                {t('replying_to', { name: s.nameOf(replying.from) })}: {(replying.body ?? '').slice(0, 80)}
              </span>
              <button type="button" class="icon-btn" aria-label={t('cancel')} data-testid="reply-cancel" onClick={() => (s.replying.delete(conv), s.changed())}>
                <Icon name="close" size={14} />
              </button>
            </div>
          )}
          {up && (
            <div class="upload-bar" data-testid="upload-progress" data-progress={Math.round(up.progress * 100)}>
              <span class="clip grow">
                {t('uploading', { name: up.name })} {Math.round(up.progress * 100)}%
              </span>
              <progress max={1} value={up.progress} />
              <button type="button" class="icon-btn" aria-label={t('cancel')} onClick={() => up.abort()}>
                <Icon name="close" size={14} />
              </button>
            </div>
          )}
        </div>
      )}
      <label class="icon-btn attach" aria-label={t('attach')} title={t('attach')}>
        <Icon name="clip" />
        <input
          type="file"
          hidden
          data-testid="attach-input"
          onChange={(e) => {
            const f = e.currentTarget.files?.[0];
            e.currentTarget.value = '';
            if (f) void s.sendFile(conv, f, text.trim(), f.type.startsWith('audio/'));
            if (f) setText('');
          }}
        />
      </label>
      {picker && options.length > 0 && (
        <ul class="picker" role="listbox" data-testid="mention-picker">
          {options.map((o) => (
            <li>
              <button type="button" role="option" data-testid="mention-option" onMouseDown={(e) => (e.preventDefault(), pick(o))}>
                {o.label}
              </button>
            </li>
          ))}
        </ul>
      )}
      <textarea
        ref={area}
        rows={1}
        value={text}
        placeholder={t('message_ph')}
        maxLength={s.maxChars}
        aria-label={t('message_ph')}
        data-testid="composer"
        onInput={(e) => onInput(e.currentTarget.value, e.currentTarget.selectionStart ?? e.currentTarget.value.length)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            if (picker && options.length) pick(options[0]);
            else submit();
          } else if (e.key === 'Escape') setPicker(null);
        }}
      />
      <button class="primary" type="submit" data-testid="send">
        {t('send')}
      </button>
    </form>
  );
}

export function Chat({ conv }: { conv: string }) {
  const s = useStore();
  useTick(2000); // typing indicators expire
  const [menu, setMenu] = useState(false);
  const [info, setInfo] = useState(false);
  const c = s.convs.get(conv);
  const gid = groupIdOf(conv);
  const peer = s.peerOf(conv);
  const title = s.convTitle(conv);
  const typing = s.typingIn(conv).filter((u) => u !== s.me?.id);
  const group = gid ? s.groups.get(gid) : undefined;
  return (
    <div class="chat" data-testid="chat" data-conv={conv}>
      <header class="chat-head">
        <button class="icon-btn back" aria-label={t('back')} onClick={() => s.navigate('/')}>
          <Icon name="back" />
        </button>
        <Avatar name={title} online={gid ? undefined : s.online(peer)} group={!!gid} />
        <div class="grow clip">
          <div class="title clip" data-testid="chat-title">
            {title}
          </div>
          <div class="muted small" data-testid="typing">
            {typing.length
              ? t('typing', { name: typing.map((u) => s.nameOf(u)).join(', ') })
              : gid
                ? group
                  ? t('members_n', { n: group.member_count })
                  : ''
                : s.online(peer)
                  ? t('online')
                  : t('offline')}
          </div>
        </div>
        {gid && (
          <button class="icon-btn" aria-label={t('info')} data-testid="group-info-btn" onClick={() => setInfo(!info)}>
            <Icon name="info" />
          </button>
        )}
        {c && (
          <button class="icon-btn" aria-label={t('menu')} data-testid="chat-menu-btn" onClick={() => setMenu(!menu)}>
            <Icon name="more" />
          </button>
        )}
        {menu && c && <ConvMenu c={c} onDone={() => setMenu(false)} />}
      </header>
      {group?.announcement && (
        <div class="announcement small" data-testid="announcement">
          <Icon name="megaphone" size={14} /> {group.announcement}
        </div>
      )}
      <div class="chat-body">
        <div class="chat-main">
          <Timeline conv={conv} />
          <Composer conv={conv} />
        </div>
        {info && gid && <GroupInfo gid={gid} onClose={() => setInfo(false)} />}
      </div>
    </div>
  );
}

