import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { store } from '../store';
import { fmtTime, lang, setLang, t, type Lang } from '../i18n';
import type { Device, OwnUser } from '../types';
import { attempt, useStore } from './hooks';

export function LangSwitch() {
  return (
    <div class="lang" data-testid="lang-switch">
      {(['en', 'zh'] as Lang[]).map((l) => (
        <button
          type="button"
          class={lang === l ? 'chip on' : 'chip'}
          aria-pressed={lang === l}
          onClick={() => {
            setLang(l);
            store.changed();
          }}
        >
          {l === 'en' ? 'English' : '简体中文'}
        </button>
      ))}
    </div>
  );
}

export function Me() {
  const s = useStore();
  const me = s.me as OwnUser;
  const [devices, setDevices] = useState<Device[]>([]);
  const [nickname, setNickname] = useState(me.nickname);
  const [bio, setBio] = useState(me.bio ?? '');
  const load = () => A.get<{ items: Device[] }>('/auth/devices').then((r) => setDevices(r.items));
  useEffect(() => {
    void load().catch(() => {});
  }, []);

  return (
    <div class="page" data-testid="me-page">
      <section>
        <h2>{t('profile')}</h2>
        <p class="muted">
          @{me.username}
          {me.phone ? ` · ${me.phone}` : ''}
        </p>
        <form
          class="row wrap"
          onSubmit={(e) => {
            e.preventDefault();
            void attempt(async () => {
              s.me = await A.patch<OwnUser>('/users/me', { nickname, bio: bio.trim() ? bio : null });
              s.users.set(me.id, s.me);
              s.changed();
            }, 'saved');
          }}
        >
          <input value={nickname} onInput={(e) => setNickname(e.currentTarget.value)} aria-label={t('nickname_opt')} />
          <input value={bio} placeholder={t('bio')} onInput={(e) => setBio(e.currentTarget.value)} aria-label={t('bio')} />
          <button type="submit">{t('save')}</button>
        </form>
      </section>
      <section>
        <h2>{t('language')}</h2>
        <LangSwitch />
      </section>
      <section>
        <h2>{t('devices')}</h2>
        <ul class="list" data-testid="devices">
          {devices.map((d) => (
            <li class="item" data-testid="device" key={d.id}>
              <div class="grow">
                <div>
                  {d.name} {d.current && <span class="badge soft">{t('this_device')}</span>}
                </div>
                <div class="muted small">{t('last_seen', { t: fmtTime(d.last_seen_at) })}</div>
              </div>
              <button
                onClick={() =>
                  void attempt(async () => {
                    await A.del(`/auth/devices/${d.id}`);
                    if (d.current) await s.logout();
                    else await load();
                  })
                }
              >
                {t('sign_out_device')}
              </button>
            </li>
          ))}
        </ul>
      </section>
      <button class="danger" data-testid="sign-out" onClick={() => void s.logout()}>
        {t('sign_out')}
      </button>
    </div>
  );
}
