import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { convPath, store } from '../store';
import { fmtTime, t } from '../i18n';
import type { Group, Invite, Member } from '../types';
import { attempt, useStore } from './hooks';
import { Avatar } from './ConvList';
import { Icon } from './Icon';

function NewGroup({ onDone }: { onDone: () => void }) {
  const s = useStore();
  const [name, setName] = useState('');
  const [ids, setIds] = useState<number[]>([]);
  return (
    <form
      class="card"
      data-testid="new-group"
      onSubmit={(e) => {
        e.preventDefault();
        void attempt(async () => {
          const g = await A.post<Group>('/groups', { name, member_ids: ids });
          await s.refreshGroups();
          await s.refreshConvs();
          onDone();
          s.navigate(convPath(g.conv));
        });
      }}
    >
      <label>
        {t('group_name')}
        <input name="group-name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={64} />
      </label>
      <fieldset>
        <legend>{t('pick_members')}</legend>
        {s.friends.map((f) => (
          <label class="check">
            <input
              type="checkbox"
              checked={ids.includes(f.user.id)}
              data-testid={`pick-${f.user.username}`}
              onChange={(e) =>
                setIds(e.currentTarget.checked ? [...ids, f.user.id] : ids.filter((x) => x !== f.user.id))
              }
            />
            {s.nameOf(f.user.id)}
          </label>
        ))}
      </fieldset>
      <div class="row">
        <button class="primary" type="submit" data-testid="create-group">
          {t('create')}
        </button>
        <button type="button" onClick={onDone}>
          {t('cancel')}
        </button>
      </div>
    </form>
  );
}

export function Groups() {
  const s = useStore();
  const [creating, setCreating] = useState(false);
  const list = [...s.groups.values()];
  return (
    <div class="page">
      <div class="row between">
        <h2>{t('groups')}</h2>
        <button data-testid="new-group-btn" onClick={() => setCreating(!creating)}>
          + {t('new_group')}
        </button>
      </div>
      {creating && <NewGroup onDone={() => setCreating(false)} />}
      {!list.length && <p class="muted">{t('no_groups')}</p>}
      <ul class="list">
        {list.map((g) => (
          <li class="item" data-testid="group">
            <a
              class="grow row"
              href={convPath(g.conv)}
              onClick={(e) => {
                e.preventDefault();
                s.navigate(convPath(g.conv));
              }}
            >
              <Avatar name={g.name} group />
              <div class="grow">
                <div class="title">{g.name}</div>
                <div class="muted small">
                  {t('members_n', { n: g.member_count })} · {t('role_' + g.my_role)}
                  {g.dissolved ? ` · ${t('composer_dissolved')}` : ''}
                </div>
              </div>
            </a>
          </li>
        ))}
      </ul>
    </div>
  );
}

function InviteLinks({ g }: { g: Group }) {
  const [links, setLinks] = useState<Invite[]>([]);
  const load = () => A.get<{ items: Invite[] }>(`/groups/${g.id}/invites`).then((r) => setLinks(r.items));
  useEffect(() => {
    void load().catch(() => {});
  }, [g.id]);
  const live = links.filter((l) => (l.expires_at ?? Infinity) > Date.now() && (l.max_uses === null || l.uses < l.max_uses));
  return (
    <section>
      <h3>{t('invite_links')}</h3>
      <button data-testid="new-link" onClick={() => void attempt(async () => (await A.post(`/groups/${g.id}/invites`, {}), await load()))}>
        + {t('new_link')}
      </button>
      {live.slice(0, 3).map((l) => (
        <div class="invite" data-testid="invite">
          <img src={`/api/v1/groups/invites/${l.token}/qr.svg`} alt="QR" width={128} height={128} data-testid="invite-qr" />
          <div class="grow clip">
            <input readOnly value={l.join_url} data-testid="invite-url" onFocus={(e) => e.currentTarget.select()} />
            <div class="muted small">
              {t('link_uses', { uses: l.uses })}
              {l.expires_at ? ` · ${fmtTime(l.expires_at)}` : ''}
            </div>
            <button
              class="link"
              onClick={() => void navigator.clipboard?.writeText(l.join_url).then(() => store.say(t('copied')), () => {})}
            >
              {t('copy')}
            </button>
          </div>
        </div>
      ))}
    </section>
  );
}

function MemberRow({ g, m }: { g: Group; m: Member }) {
  const s = store;
  const me = s.me?.id;
  const [open, setOpen] = useState(false);
  const owner = g.my_role === 'owner';
  const canManage = m.user.id !== me && m.role !== 'owner' && (owner || (g.my_role === 'admin' && m.role === 'member'));
  const muted = (m.muted_until ?? 0) > Date.now();
  const act = (f: () => Promise<unknown>) => () => void attempt(async () => (await f(), await s.refreshGroup(g.id), setOpen(false)));
  const mute = (ms: number) => act(() => A.put(`/groups/${g.id}/members/${m.user.id}/mute`, { until: Date.now() + ms }));
  return (
    <li class="item member" data-testid="member" data-user={m.user.username}>
      <Avatar name={s.nameOf(m.user.id)} />
      <div class="grow">
        <div>
          {s.nameOf(m.user.id)} {m.role !== 'member' && <span class="badge soft" data-testid="role">{t('role_' + m.role)}</span>}
        </div>
        {muted && <div class="muted small" data-testid="muted">{t('muted_until', { t: fmtTime(m.muted_until ?? 0) })}</div>}
      </div>
      {canManage && (
        <button class="icon-btn" aria-label={t('menu')} data-testid="member-menu-btn" onClick={() => setOpen(!open)}>
          <Icon name="more" />
        </button>
      )}
      {open && (
        <div class="menu" role="menu">
          {owner && m.role === 'member' && (
            <button role="menuitem" onClick={act(() => A.put(`/groups/${g.id}/admins/${m.user.id}`))}>
              {t('make_admin')}
            </button>
          )}
          {owner && m.role === 'admin' && (
            <button role="menuitem" onClick={act(() => A.del(`/groups/${g.id}/admins/${m.user.id}`))}>
              {t('remove_admin')}
            </button>
          )}
          {muted ? (
            <button role="menuitem" onClick={act(() => A.del(`/groups/${g.id}/members/${m.user.id}/mute`))}>
              {t('unmute')}
            </button>
          ) : (
            <>
              <button role="menuitem" data-testid="mute-10m" onClick={mute(10 * 60_000)}>
                {t('mute_10m')}
              </button>
              <button role="menuitem" onClick={mute(24 * 3600_000)}>
                {t('mute_1d')}
              </button>
            </>
          )}
          <button
            role="menuitem"
            data-testid="remove-member"
            onClick={() => {
              if (confirm(t('confirm_remove', { name: s.nameOf(m.user.id) }))) act(() => A.del(`/groups/${g.id}/members/${m.user.id}`))();
            }}
          >
            {t('remove')}
          </button>
        </div>
      )}
    </li>
  );
}

/** The group's side panel: settings, members and their roles, invites, leave and dissolve. */
export function GroupInfo({ gid, onClose }: { gid: number; onClose: () => void }) {
  const s = useStore();
  const g = s.groups.get(gid);
  const members = s.members.get(gid) ?? [];
  const [name, setName] = useState(g?.name ?? '');
  const [ann, setAnn] = useState(g?.announcement ?? '');
  const [inviting, setInviting] = useState<number[]>([]);
  useEffect(() => {
    void s.refreshGroup(gid).catch(() => {});
  }, [gid]);
  // Each field follows the group on its own, so a change to one does not undo an edit of the other.
  useEffect(() => setName(g?.name ?? ''), [g?.name]);
  useEffect(() => setAnn(g?.announcement ?? ''), [g?.announcement]);
  if (!g) return null;
  const staff = g.my_role !== 'member';
  const canInvite = !g.dissolved && (staff || g.invite_policy === 'members');
  // Shown at once (a checkbox follows the click), then confirmed, or undone, by the server.
  const change = (body: Partial<Group>) => () => {
    s.groups.set(gid, { ...g, ...body });
    s.changed();
    void attempt(async () => {
      try {
        await A.patch(`/groups/${gid}`, body);
      } finally {
        await s.refreshGroup(gid);
      }
    });
  };
  const invitable = s.friends.filter((f) => !members.some((m) => m.user.id === f.user.id));
  return (
    <aside class="panel" data-testid="group-info">
      <div class="row between">
        <h2 class="clip">{g.name}</h2>
        <button class="icon-btn" aria-label={t('cancel')} onClick={onClose}>
          <Icon name="close" />
        </button>
      </div>
      {staff && !g.dissolved && (
        <section>
          <h3>{t('settings')}</h3>
          <div class="row">
            <input value={name} aria-label={t('group_name')} data-testid="group-name" onInput={(e) => setName(e.currentTarget.value)} />
            <button data-testid="rename-group" onClick={change({ name })}>
              {t('rename')}
            </button>
          </div>
          <textarea value={ann} aria-label={t('announcement')} placeholder={t('announcement')} data-testid="announcement-input" onInput={(e) => setAnn(e.currentTarget.value)} />
          <button data-testid="save-announcement" onClick={change({ announcement: ann.trim() ? ann : null })}>
            {t('save')}
          </button>
          <label class="check">
            <input type="checkbox" checked={g.mute_all} data-testid="mute-all" onChange={(e) => change({ mute_all: e.currentTarget.checked })()} />
            {t('mute_all')}
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={g.invite_policy === 'admins'}
              data-testid="admins-invite"
              onChange={(e) => change({ invite_policy: e.currentTarget.checked ? 'admins' : 'members' })()}
            />
            {t('admins_invite')}
          </label>
        </section>
      )}
      {!staff && g.announcement && (
        <section>
          <h3>{t('announcement')}</h3>
          <p>{g.announcement}</p>
        </section>
      )}
      <section>
        <h3>
          {t('members')} ({g.member_count})
        </h3>
        <ul class="list" data-testid="members">
          {members.map((m) => (
            <MemberRow g={g} m={m} key={m.user.id} />
          ))}
        </ul>
      </section>
      {canInvite && invitable.length > 0 && (
        <section>
          <h3>{t('invite_friends')}</h3>
          {invitable.map((f) => (
            <label class="check">
              <input
                type="checkbox"
                checked={inviting.includes(f.user.id)}
                data-testid={`invite-${f.user.username}`}
                onChange={(e) => setInviting(e.currentTarget.checked ? [...inviting, f.user.id] : inviting.filter((x) => x !== f.user.id))}
              />
              {s.nameOf(f.user.id)}
            </label>
          ))}
          <button
            data-testid="invite-friends"
            disabled={!inviting.length}
            onClick={() =>
              void attempt(async () => {
                await A.post(`/groups/${gid}/members`, { user_ids: inviting });
                setInviting([]);
                await s.refreshGroup(gid);
              })
            }
          >
            {t('invite')}
          </button>
        </section>
      )}
      {canInvite && <InviteLinks g={g} />}
      <section class="row wrap">
        {g.my_role !== 'owner' && !g.dissolved && (
          <button
            class="danger"
            data-testid="leave-group"
            onClick={() => {
              if (!confirm(t('confirm_leave'))) return;
              void attempt(async () => {
                await A.post(`/groups/${gid}/leave`);
                await s.refreshGroups();
                onClose();
              });
            }}
          >
            {t('leave')}
          </button>
        )}
        {g.my_role === 'owner' && !g.dissolved && (
          <button
            class="danger"
            data-testid="dissolve-group"
            onClick={() => {
              if (!confirm(t('confirm_dissolve'))) return;
              void attempt(async () => {
                await A.del(`/groups/${gid}`);
                await s.refreshGroup(gid);
              });
            }}
          >
            {t('dissolve')}
          </button>
        )}
      </section>
    </aside>
  );
}
