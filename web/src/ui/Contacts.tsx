import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { store } from '../store';
import { errorText, t } from '../i18n';
import type { Friend, FriendRequest, PublicUser } from '../types';
import { attempt, useStore } from './hooks';
import { Avatar } from './ConvList';
import { Icon } from './Icon';

/** Told to the block list when a block is made or lifted elsewhere on the page. */
const BLOCKS_CHANGED = 'im-blocks-changed';

/** Blocks `u` after asking; the friendship (if any) ends on the server. */
async function blockUser(id: number, name: string): Promise<void> {
  if (!confirm(t('confirm_block', { name }))) return;
  await attempt(async () => {
    await A.put(`/blocks/${id}`, {});
    window.dispatchEvent(new Event(BLOCKS_CHANGED));
    await Promise.all([store.refreshFriends(), store.refreshRequests()]);
  });
}

interface BlockedUser {
  user: PublicUser;
  blocked_at: number;
}

function Blocked() {
  const [list, setList] = useState<BlockedUser[] | null>(null);
  const load = () => void attempt(async () => setList(await A.all<BlockedUser>('/blocks')));
  useEffect(() => {
    load();
    window.addEventListener(BLOCKS_CHANGED, load);
    return () => window.removeEventListener(BLOCKS_CHANGED, load);
  }, []);
  return (
    <section data-testid="blocked-section">
      <h3>{t('blocked_users')}</h3>
      {list && !list.length && <p class="muted">{t('no_blocked')}</p>}
      <ul class="list">
        {list?.map((b) => (
          <li class="item" data-testid="blocked-user" data-user={b.user.username} key={b.user.id}>
            <Avatar name={b.user.nickname} />
            <div class="grow">
              <div>{b.user.nickname}</div>
              <div class="muted small">@{b.user.username}</div>
            </div>
            <button
              data-testid="unblock"
              onClick={() =>
                void attempt(async () => {
                  await A.del(`/blocks/${b.user.id}`);
                  load();
                })
              }
            >
              {t('unblock')}
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Search() {
  const s = useStore();
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<PublicUser[] | null>(null);
  const [msg, setMsg] = useState<Record<number, string>>({});
  const [note, setNote] = useState<Record<number, string>>({});
  return (
    <section>
      <h3>{t('add_friend')}</h3>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void attempt(async () => setHits((await A.get<{ items: PublicUser[] }>(`/user/search?q=${encodeURIComponent(q.trim())}`)).items));
        }}
      >
        <input class="grow" value={q} placeholder={t('search_ph')} aria-label={t('search_ph')} data-testid="search-input" onInput={(e) => setQ(e.currentTarget.value)} />
        <button type="submit" data-testid="search-btn">
          {t('search')}
        </button>
      </form>
      {hits && !hits.length && <p class="muted">{t('no_results')}</p>}
      <ul class="list">
        {hits?.map((u) => (
          <li class="item wrap" data-testid="search-hit" data-user={u.username}>
            <Avatar name={u.nickname} />
            <div class="grow">
              <div>{u.nickname}</div>
              <div class="muted small">
                @{u.username}
                {u.phone ? ` · ${u.phone}` : ''}
              </div>
            </div>
            {s.friend(u.id) ? (
              <button onClick={() => void attempt(() => s.openWith(u.id))}>{t('chat')}</button>
            ) : u.id !== s.me?.id ? (
              <form
                class="row"
                onSubmit={(e) => {
                  e.preventDefault();
                  A.post<FriendRequest>('/friend/request', { to_user_id: u.id, message: msg[u.id] ?? '' }).then(
                    async (r) => {
                      setNote({ ...note, [u.id]: t(r.status === 'accepted' ? 'now_friends' : 'request_sent') });
                      await Promise.all([s.refreshRequests(), s.refreshFriends()]);
                    },
                    (err) => setNote({ ...note, [u.id]: errorText(err) }),
                  );
                }}
              >
                <input
                  value={msg[u.id] ?? ''}
                  placeholder={t('request_msg_ph')}
                  maxLength={200}
                  data-testid="request-message"
                  onInput={(e) => setMsg({ ...msg, [u.id]: e.currentTarget.value })}
                />
                <button class="primary" type="submit" data-testid="send-request">
                  {t('send_request')}
                </button>
              </form>
            ) : null}
            {u.id !== s.me?.id && !s.friend(u.id) && (
              <button class="link danger" data-testid="block-user" onClick={() => void blockUser(u.id, u.nickname)}>
                {t('block')}
              </button>
            )}
            {note[u.id] && (
              <p class="small note" data-testid="request-note">
                {note[u.id]}
              </p>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Requests() {
  const s = useStore();
  const [dir, setDir] = useState<'in' | 'out'>('in');
  const list = dir === 'in' ? s.requestsIn : s.requestsOut;
  const answer = (r: FriendRequest, action: string) =>
    void attempt(async () => {
      await A.put(`/friend/request/${r.id}`, { action });
      await Promise.all([s.refreshRequests(), s.refreshFriends(), s.refreshConvs()]);
    });
  return (
    <section>
      <div class="row between">
        <h3>{t('requests')}</h3>
        <div class="tabs">
          <button class={dir === 'in' ? 'chip on' : 'chip'} data-testid="requests-in" onClick={() => setDir('in')}>
            {t('incoming')}
          </button>
          <button class={dir === 'out' ? 'chip on' : 'chip'} data-testid="requests-out" onClick={() => setDir('out')}>
            {t('outgoing')}
          </button>
        </div>
      </div>
      {!list.length && <p class="muted">{t('no_requests')}</p>}
      <ul class="list">
        {list.map((r) => (
          <li class="item wrap" data-testid="request" data-user={r.user.username} data-status={r.status}>
            <Avatar name={r.user.nickname} />
            <div class="grow">
              <div>
                {r.user.nickname} <span class="muted small">@{r.user.username}</span>
              </div>
              {r.message && <div class="small">“{r.message}”</div>}
              <div class="muted small">{t('st_' + r.status)}</div>
            </div>
            {dir === 'in' && (r.status === 'pending' || r.status === 'ignored') && (
              <div class="row">
                <button class="primary" data-testid="accept" onClick={() => answer(r, 'accept')}>
                  {t('accept')}
                </button>
                <button data-testid="reject" onClick={() => answer(r, 'reject')}>
                  {t('reject')}
                </button>
                {r.status === 'pending' && (
                  <button data-testid="ignore" onClick={() => answer(r, 'ignore')}>
                    {t('ignore')}
                  </button>
                )}
              </div>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function FriendRow({ f }: { f: Friend }) {
  const s = store;
  const [open, setOpen] = useState(false);
  const [remark, setRemark] = useState(f.remark ?? '');
  const patch = (body: object) =>
    void attempt(async () => {
      await A.patch(`/friends/${f.user.id}`, body);
      await s.refreshFriends();
    });
  return (
    <li class="item wrap" data-testid="friend" data-user={f.user.username}>
      <Avatar name={s.nameOf(f.user.id)} online={f.online} />
      <div class="grow">
        <div>
          {s.nameOf(f.user.id)} {f.dnd && (
            <span class="muted" title={t('dnd_on')}>
              <Icon name="mute" size={14} />
            </span>
          )}
        </div>
        <div class="muted small">
          @{f.user.username} · {f.online ? t('online') : t('offline')}
        </div>
      </div>
      <button data-testid="chat-with" onClick={() => void attempt(() => s.openWith(f.user.id))}>
        {t('chat')}
      </button>
      <button class="icon-btn" aria-label={t('menu')} data-testid="friend-menu-btn" onClick={() => setOpen(!open)}>
        <Icon name="more" />
      </button>
      {open && (
        <div class="friend-edit">
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              patch({ remark: remark.trim() || null });
            }}
          >
            <input value={remark} placeholder={t('remark_ph')} aria-label={t('remark')} data-testid="remark-input" onInput={(e) => setRemark(e.currentTarget.value)} />
            <button type="submit" data-testid="save-remark">
              {t('save')}
            </button>
          </form>
          <label class="row">
            {t('move_to')}
            <select value={f.category.id} data-testid="move-category" onChange={(e) => patch({ category_id: Number(e.currentTarget.value) })}>
              {s.categories.map((c) => (
                <option value={c.id}>{c.name}</option>
              ))}
            </select>
          </label>
          <label class="check">
            <input type="checkbox" checked={f.dnd} data-testid="friend-dnd" onChange={(e) => patch({ dnd: e.currentTarget.checked })} />
            {t('dnd_on')}
          </label>
          <button
            class="danger"
            data-testid="delete-friend"
            onClick={() => {
              if (!confirm(t('confirm_delete_friend', { name: s.nameOf(f.user.id) }))) return;
              void attempt(async () => {
                await A.del(`/friends/${f.user.id}`);
                await s.refreshFriends();
              });
            }}
          >
            {t('delete_friend')}
          </button>
          <button class="danger" data-testid="block-friend" onClick={() => void blockUser(f.user.id, s.nameOf(f.user.id))}>
            {t('block')}
          </button>
        </div>
      )}
    </li>
  );
}

function Friends() {
  const s = useStore();
  const [newCat, setNewCat] = useState('');
  const [editing, setEditing] = useState<number | null>(null);
  const [catName, setCatName] = useState('');
  return (
    <section>
      <h3>{t('categories')}</h3>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void attempt(async () => {
            await A.post('/friend/categories', { name: newCat });
            setNewCat('');
            await s.refreshFriends();
          });
        }}
      >
        <input class="grow" value={newCat} placeholder={t('new_category')} aria-label={t('new_category')} data-testid="new-category" onInput={(e) => setNewCat(e.currentTarget.value)} required maxLength={32} />
        <button type="submit" data-testid="add-category">
          {t('add')}
        </button>
      </form>
      {s.categories.map((c) => {
        const list = s.friends.filter((f) => f.category.id === c.id);
        return (
          <details open class="category" data-testid="category" data-name={c.name}>
            <summary class="row between">
              {editing === c.id ? (
                <form
                  class="row"
                  onSubmit={(e) => {
                    e.preventDefault();
                    void attempt(async () => {
                      await A.patch(`/friend/categories/${c.id}`, { name: catName });
                      setEditing(null);
                      await s.refreshFriends();
                    });
                  }}
                >
                  <input value={catName} data-testid="category-name" onInput={(e) => setCatName(e.currentTarget.value)} />
                  <button type="submit">{t('save')}</button>
                </form>
              ) : (
                <span>
                  {c.is_default && c.name === 'Friends' ? t('default_category') : c.name} <span class="muted small">({list.length})</span>
                </span>
              )}
              <span class="row">
                <button class="link" data-testid="rename-category" onClick={(e) => (e.preventDefault(), setEditing(c.id), setCatName(c.name))}>
                  {t('rename')}
                </button>
                {!c.is_default && (
                  <button
                    class="link"
                    data-testid="delete-category"
                    onClick={(e) => {
                      e.preventDefault();
                      void attempt(async () => {
                        await A.del(`/friend/categories/${c.id}`);
                        await s.refreshFriends();
                      });
                    }}
                  >
                    {t('delete')}
                  </button>
                )}
              </span>
            </summary>
            <ul class="list">
              {list.map((f) => (
                <FriendRow f={f} key={f.user.id} />
              ))}
            </ul>
          </details>
        );
      })}
      {!s.friends.length && <p class="muted">{t('no_friends')}</p>}
    </section>
  );
}

export function Contacts() {
  return (
    <div class="page" data-testid="contacts">
      <Requests />
      <Search />
      <Friends />
      <Blocked />
    </div>
  );
}
