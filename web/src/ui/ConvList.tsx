import { useState } from 'preact/hooks';
import { convPath, sortConvs, store } from '../store';
import { fmtTime, t } from '../i18n';
import type { Conversation } from '../types';
import { attempt, useStore } from './hooks';
import { Icon } from './Icon';

export function Avatar({ name, online, group }: { name: string; online?: boolean; group?: boolean }) {
  const ch = [...(name || '?')][0]?.toUpperCase() ?? '?';
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360;
  return (
    <span class={`avatar ${group ? 'group' : ''}`} style={{ background: `hsl(${h} 45% 55%)` }} aria-hidden="true">
      {ch}
      {online !== undefined && <i class={`dot ${online ? 'on' : ''}`} data-testid="presence" data-online={String(online)} />}
    </span>
  );
}

/** The menu of a conversation: pin, do-not-disturb, clear history, hide. */
export function ConvMenu({ c, onDone }: { c: Conversation; onDone?: () => void }) {
  const done = () => onDone?.();
  return (
    <div class="menu" role="menu" data-testid="conv-menu">
      <button role="menuitem" onClick={() => (void attempt(() => store.setConv(c.conv, { pinned: !c.pinned })), done())}>
        {c.pinned ? t('unpin') : t('pin')}
      </button>
      <button role="menuitem" onClick={() => (void attempt(() => store.setConv(c.conv, { dnd: !c.dnd })), done())}>
        {c.dnd ? t('dnd_off') : t('dnd_on')}
      </button>
      <button
        role="menuitem"
        onClick={() => {
          if (confirm(t('confirm_clear'))) void attempt(() => store.clearHistory(c.conv));
          done();
        }}
      >
        {t('clear_history')}
      </button>
      <button role="menuitem" onClick={() => (void attempt(() => store.hideConv(c.conv)), done())}>
        {t('hide')}
      </button>
    </div>
  );
}

function preview(c: Conversation): string {
  const m = c.last_message;
  if (!m) return '';
  if (c.mentioned) return t('mentioned_you');
  if (m.preview === null) {
    // Recalled, or a group's system message: the timeline tells which, when it is loaded.
    const held = store.timelines.get(c.conv)?.msgs.find((x) => x.seq === m.seq);
    if (held) return held.kind === 'system' ? t('preview_system') : t('preview_recalled');
    return c.kind === 'direct' ? t('preview_recalled') : '';
  }
  const who = m.from === store.me?.id ? t('you') : c.kind === 'group' ? store.nameOf(m.from) : '';
  return who ? `${who}: ${m.preview}` : m.preview;
}

export function ConvList() {
  const s = useStore();
  const [menu, setMenu] = useState<string | null>(null);
  const list = sortConvs([...s.convs.values()]);
  if (!list.length) return <p class="empty pad">{t('no_convs')}</p>;
  return (
    <ul class="list convs" data-testid="conv-list">
      {list.map((c) => {
        const peer = c.peer?.id;
        const title = s.convTitle(c.conv);
        return (
          <li
            key={c.conv}
            class={`item conv ${s.route.conv === c.conv ? 'on' : ''} ${c.pinned ? 'pinned' : ''}`}
            data-testid="conv"
            data-conv={c.conv}
          >
            <a
              href={convPath(c.conv)}
              class="grow row"
              onClick={(e) => {
                e.preventDefault();
                s.navigate(convPath(c.conv));
              }}
            >
              <Avatar name={title} online={c.kind === 'direct' ? s.online(peer) : undefined} group={c.kind === 'group'} />
              <div class="grow clip">
                <div class="row between">
                  <span class="title clip" data-testid="conv-title">
                    {c.pinned && (
                      <span class="pin" title={t('pin')} data-testid="pinned">
                        <Icon name="pin" size={13} />{' '}
                      </span>
                    )}
                    {title}
                  </span>
                  <span class="muted small">{c.last_message?.ts ? fmtTime(c.last_message.ts) : ''}</span>
                </div>
                <div class="row between">
                  <span class={`muted small clip ${c.mentioned ? 'mention' : ''}`} data-testid="conv-preview">
                    {preview(c)}
                  </span>
                  {c.dnd && (
                    <span class="muted" title={t('dnd_on')} data-testid="conv-dnd">
                      <Icon name="mute" size={14} />
                    </span>
                  )}
                  {c.unread > 0 && (
                    <span class={`badge ${c.dnd ? 'soft' : ''}`} data-testid="unread">
                      {c.unread > 99 ? '99+' : c.unread}
                    </span>
                  )}
                </div>
              </div>
            </a>
            <button class="icon-btn" aria-label={t('menu')} data-testid="conv-menu-btn" onClick={() => setMenu(menu === c.conv ? null : c.conv)}>
              <Icon name="more" />
            </button>
            {menu === c.conv && <ConvMenu c={c} onDone={() => setMenu(null)} />}
          </li>
        );
      })}
    </ul>
  );
}
