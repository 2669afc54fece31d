import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { store } from '../store';
import { fmtTime, lang, setLang, t, type Lang } from '../i18n';
import type { Device, OwnUser } from '../types';
import { attempt, useStore } from './hooks';
import * as P from '../push';
import { tellLang } from '../push';

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
            tellLang(l);
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
      <Notifications deviceId={s.deviceId} />
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

/** Web Push for this browser (on / off) and my push settings (previews, mentions in muted chats). */
export function Notifications({ deviceId }: { deviceId: number }) {
  const [state, setState] = useState<P.PushState | null>(null);
  const [settings, setSettings] = useState<P.PushSettings | null>(null);
  useEffect(() => {
    void P.state().then(setState, () => setState('unsupported'));
    void A.get<P.PushSettings>('/push/settings').then(setSettings, () => {});
  }, []);
  const change = (patch: Partial<P.PushSettings>) =>
    void attempt(async () => {
      if (!settings) return;
      setSettings(await A.put<P.PushSettings>('/push/settings', { ...settings, ...patch }));
    });
  const text: Record<P.PushState, string> = {
    unsupported: t('push_unsupported'),
    unavailable: t('push_unavailable'),
    denied: t('push_denied'),
    off: t('push_off'),
    on: t('push_on'),
  };
  return (
    <section data-testid="push-settings">
      <h2>{t('notifications')}</h2>
      {state && (
        <p class="muted" data-testid="push-state" data-state={state}>
          {text[state]}
        </p>
      )}
      {(state === 'off' || state === 'on') && (
        <button
          type="button"
          data-testid="push-toggle"
          onClick={() => void attempt(async () => setState(state === 'on' ? await P.disable(deviceId) : await P.enable(deviceId)))}
        >
          {state === 'on' ? t('push_disable') : t('push_enable')}
        </button>
      )}
      {settings && (
        <div>
          <label class="row">
            <input
              type="checkbox"
              data-testid="push-previews"
              checked={settings.previews}
              onChange={(e) => change({ previews: e.currentTarget.checked })}
            />
            {t('push_previews')}
          </label>
          <label class="row">
            <input
              type="checkbox"
              data-testid="push-mentions"
              checked={settings.mentions_break_mute}
              onChange={(e) => change({ mentions_break_mute: e.currentTarget.checked })}
            />
            {t('push_mentions')}
          </label>
        </div>
      )}
    </section>
  );
}
