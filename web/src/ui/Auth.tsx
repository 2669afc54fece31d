import { useState } from 'preact/hooks';
import { store } from '../store';
import { errorText, t } from '../i18n';
import { LangSwitch } from './Me';

export function Auth({ hint }: { hint?: string }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [id, setId] = useState('');
  const [password, setPassword] = useState('');
  const [phone, setPhone] = useState('');
  const [nickname, setNickname] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      if (mode === 'login') {
        const who = id.trim();
        await store.login(who.startsWith('+') ? { phone: who, password } : { username: who, password });
      } else {
        await store.register({
          username: id.trim(),
          password,
          ...(phone.trim() ? { phone: phone.trim() } : {}),
          ...(nickname.trim() ? { nickname: nickname.trim() } : {}),
        });
      }
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="auth">
      <form class="card" onSubmit={submit} data-testid="auth-form">
        <h1>{mode === 'login' ? t('sign_in') : t('register')}</h1>
        {hint && <p class="hint">{hint}</p>}
        {store.busy && <p class="hint" data-testid="busy-tab">{t('busy_tab')}</p>}
        <label>
          {mode === 'login' ? t('login_id') : t('username')}
          <input name="username" autocomplete="username" value={id} onInput={(e) => setId(e.currentTarget.value)} required />
        </label>
        <label>
          {t('password')}
          <input
            name="password"
            type="password"
            autocomplete={mode === 'login' ? 'current-password' : 'new-password'}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            required
          />
        </label>
        {mode === 'register' && (
          <>
            <label>
              {t('nickname_opt')}
              <input name="nickname" value={nickname} onInput={(e) => setNickname(e.currentTarget.value)} />
            </label>
            <label>
              {t('phone_opt')}
              <input name="phone" type="tel" value={phone} onInput={(e) => setPhone(e.currentTarget.value)} />
            </label>
          </>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button class="primary" type="submit" disabled={busy} data-testid="auth-submit">
          {mode === 'login' ? t('sign_in') : t('register')}
        </button>
        <p class="switch">
          {mode === 'login' ? t('no_account') : t('have_account')}{' '}
          <a
            href="#"
            data-testid="auth-switch"
            onClick={(e) => {
              e.preventDefault();
              setError('');
              setMode(mode === 'login' ? 'register' : 'login');
            }}
          >
            {mode === 'login' ? t('register') : t('sign_in')}
          </a>
        </p>
        <LangSwitch />
      </form>
    </div>
  );
}
