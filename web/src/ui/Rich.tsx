// Rich messages in the timeline: the quote of a reply, a forward's origin, attachments (fetched
// with the token and shown as object URLs), reactions, the forward picker.

import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { store } from '../store';
import { quoteText } from '../timeline';
import { t } from '../i18n';
import type { Attachment, Message, Quote } from '../types';
import { Icon } from './Icon';

/** The quoted message of a reply; a click scrolls to it when the timeline holds it. */
export function QuoteView({ q, onJump }: { q: Quote; onJump?: (seq: number) => void }) {
  const text = quoteText(q, t);
  return (
    <button type="button" class={`quote ${q.state}`} data-testid="quote" data-state={q.state} data-quote-seq={q.seq} onClick={() => onJump?.(q.seq)}>
      {q.state === 'visible' && q.from !== undefined && <b class="small">{store.nameOf(q.from)}</b>}
      <span class="small clip">{text}</span>
    </button>
  );
}

/** The text that names an attachment size for a person. */
export function fmtSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function useBlob(path: string | null): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!path) return;
    let live = true;
    A.blobUrl(path).then((u) => live && setUrl(u), () => {});
    return () => {
      live = false;
    };
  }, [path]);
  return url;
}

/** An image (its thumbnail, full size on a click), a voice note (a player) or a file (download). */
export function AttachmentView({ a }: { a: Attachment }) {
  const [full, setFull] = useState(false);
  const [play, setPlay] = useState(false);
  const thumb = useBlob(a.kind === 'image' ? `/uploads/${a.id}${a.thumb ? '/thumb' : ''}` : null);
  const big = useBlob(full || play ? `/uploads/${a.id}` : null);
  if (a.kind === 'image') {
    const w = a.width && a.height ? Math.min(240, a.width) : 240;
    const h = a.width && a.height ? Math.round((w * a.height) / a.width) : undefined;
    return (
      <>
        <button type="button" class="att-img" data-testid="att-image" onClick={() => setFull(true)} aria-label={a.name}>
          {thumb ? <img src={thumb} alt={a.name} width={w} height={h} data-testid="thumb" /> : <span class="thumb-ph" style={{ width: w, height: h ?? 160 }} />}
        </button>
        {full && (
          <div class="lightbox" role="dialog" data-testid="lightbox" onClick={() => setFull(false)}>
            {big ? <img src={big} alt={a.name} data-testid="full-image" /> : <p>{t('loading')}</p>}
          </div>
        )}
      </>
    );
  }
  if (a.kind === 'voice') {
    return play && big ? (
      <audio controls autoplay src={big} data-testid="att-audio" />
    ) : (
      <button type="button" class="att-file" data-testid="att-voice" onClick={() => setPlay(true)}>
        ▶ {t('att_voice')} · {fmtSize(a.size)}
      </button>
    );
  }
  return (
    <button type="button" class="att-file" data-testid="att-file" onClick={() => void download(a)}>
      <Icon name="clip" size={14} /> <span class="clip">{a.name}</span> <span class="muted small">{fmtSize(a.size)}</span>
    </button>
  );
}

async function download(a: Attachment) {
  try {
    const url = await A.blobUrl(`/uploads/${a.id}`);
    const link = document.createElement('a');
    link.href = url;
    link.download = a.name;
    link.click();
  } catch (e) {
    store.say(String((e as Error).message));
  }
}

/** The reactions under a message: counts, mine highlighted, a click toggles mine. */
export function Reactions({ m }: { m: Message }) {
  if (!m.reactions?.length || m.recalled) return null;
  return (
    <div class="reactions" data-testid="reactions">
      {m.reactions.map((r) => (
        <button
          type="button"
          class={`chip ${r.mine ? 'mine' : ''}`}
          data-testid="reaction"
          data-emoji={r.emoji}
          data-count={r.count}
          data-mine={r.mine ? '1' : ''}
          aria-pressed={!!r.mine}
          onClick={() => store.react(m.conv, m.seq, r.emoji, !r.mine)}
        >
          {r.emoji} {r.count}
        </button>
      ))}
    </div>
  );
}

/** The allowed reactions to pick one from. */
export function ReactionPicker({ m, onDone }: { m: Message; onDone: () => void }) {
  return (
    <div class="emoji-picker" role="menu" data-testid="reaction-picker">
      {store.reactions.map((e) => {
        const mine = !!m.reactions?.some((r) => r.emoji === e && r.mine);
        // A new emoji on a message that has as many different ones as it may: refused anyway.
        const full = !m.reactions?.some((r) => r.emoji === e) && (m.reactions?.length ?? 0) >= store.maxReactions;
        return (
          <button type="button" role="menuitem" class={mine ? 'mine' : ''} disabled={full} data-testid="pick-reaction" data-emoji={e} onClick={() => (store.react(m.conv, m.seq, e, !mine), onDone())}>
            {e}
          </button>
        );
      })}
    </div>
  );
}

/** Picks the conversation to forward a message to. */
export function ForwardPicker({ m, onDone }: { m: Message; onDone: () => void }) {
  const [q, setQ] = useState('');
  const convs = [...store.convs.values()].filter((c) => !c.group?.dissolved && store.convTitle(c.conv).toLowerCase().includes(q.toLowerCase()));
  return (
    <div class="lightbox" role="dialog" data-testid="forward-picker" onClick={onDone}>
      <div class="panel" onClick={(e) => e.stopPropagation()}>
        <h3>{t('forward_to')}</h3>
        <input value={q} placeholder={t('search')} onInput={(e) => setQ(e.currentTarget.value)} />
        <ul class="plain">
          {convs.map((c) => (
            <li>
              <button
                type="button"
                class="link"
                data-testid="forward-target"
                data-conv={c.conv}
                onClick={() => {
                  store.send(c.conv, '', [], false, { forward: m });
                  store.say(t('forwarded_to', { name: store.convTitle(c.conv) }));
                  onDone();
                }}
              >
                {store.convTitle(c.conv)}
              </button>
            </li>
          ))}
        </ul>
        <button type="button" onClick={onDone}>
          {t('cancel')}
        </button>
      </div>
    </div>
  );
}
