import { useEffect, useRef, useState } from 'preact/hooks';
import * as A from '../api';
import { convPath } from '../store';
import { fmtTime, t } from '../i18n';
import type { Message } from '../types';
import { attempt, useStore } from './hooks';

/** One hit of `GET /search/messages`: the message and the `[start, end)` code-point ranges of the query in its body. */
export interface SearchHit {
  message: Message;
  highlights: [number, number][];
}

/** The body cut into plain and marked parts by `highlights` (offsets in code points, not UTF-16 units). */
export function markParts(body: string, highlights: [number, number][]): { text: string; hit: boolean }[] {
  const chars = Array.from(body);
  const out: { text: string; hit: boolean }[] = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start < at || end <= start || end > chars.length) continue;
    if (start > at) out.push({ text: chars.slice(at, start).join(''), hit: false });
    out.push({ text: chars.slice(start, end).join(''), hit: true });
    at = end;
  }
  if (at < chars.length) out.push({ text: chars.slice(at).join(''), hit: false });
  return out;
}

/** A search box over my messages (every conversation) above the conversation list; a hit opens its conversation. */
export function MessageSearch() {
  const s = useStore();
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const asked = useRef('');

  const run = async (query: string, before: string | null) => {
    const path = `/search/messages?q=${encodeURIComponent(query)}&limit=20${before ? `&before=${encodeURIComponent(before)}` : ''}`;
    const page = await A.get<{ items: SearchHit[]; next_before?: string }>(path);
    if (asked.current !== query) return; // a newer query was typed meanwhile
    setHits((old) => (before && old ? [...old, ...page.items] : page.items));
    setNext(page.next_before ?? null);
  };

  useEffect(() => {
    const query = q.trim();
    asked.current = query;
    if (!query) {
      setHits(null);
      setNext(null);
      return;
    }
    const timer = setTimeout(() => void attempt(() => run(query, null)), 300);
    return () => clearTimeout(timer);
  }, [q]);

  return (
    <div class="msg-search">
      <form class="row pad-x" role="search" onSubmit={(e) => e.preventDefault()}>
        <input
          class="grow"
          type="search"
          value={q}
          maxLength={100}
          placeholder={t('msg_search_ph')}
          aria-label={t('msg_search_ph')}
          data-testid="msg-search-input"
          onInput={(e) => setQ(e.currentTarget.value)}
        />
        {q && (
          <button type="button" class="link" data-testid="msg-search-clear" onClick={() => setQ('')}>
            {t('clear')}
          </button>
        )}
      </form>
      {hits && (
        <div class="msg-search-results" data-testid="msg-search-results">
          {!hits.length && <p class="muted pad">{t('msg_search_none')}</p>}
          <ul class="list">
            {hits.map((h) => (
              <li class="item" data-testid="msg-search-hit" data-conv={h.message.conv} data-seq={h.message.seq} key={`${h.message.conv}/${h.message.seq}`}>
                <a
                  href={convPath(h.message.conv)}
                  class="grow clip"
                  onClick={(e) => {
                    e.preventDefault();
                    s.navigate(convPath(h.message.conv));
                  }}
                >
                  <div class="row between">
                    <span class="title clip">{s.convTitle(h.message.conv)}</span>
                    <span class="muted small">{fmtTime(h.message.ts)}</span>
                  </div>
                  <div class="small clip">
                    <span class="muted">{h.message.from === s.me?.id ? t('you') : s.nameOf(h.message.from)}: </span>
                    {markParts(h.message.body ?? '', h.highlights).map((p) => (p.hit ? <mark>{p.text}</mark> : p.text))}
                  </div>
                </a>
              </li>
            ))}
          </ul>
          {next && (
            <button class="link pad" data-testid="msg-search-more" onClick={() => void attempt(() => run(asked.current, next))}>
              {t('more_results')}
            </button>
          )}
        </div>
      )}
    </div>
  );
}
