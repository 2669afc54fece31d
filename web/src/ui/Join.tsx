import { useEffect, useState } from 'preact/hooks';
import * as A from '../api';
import { convPath, store } from '../store';
import { errorText, t } from '../i18n';
import type { Group, InvitePreview } from '../types';
import { useStore } from './hooks';
import { Auth } from './Auth';
import { Avatar } from './ConvList';

/** `/join/<token>`: what an invite link or its QR code opens, signed in or not. */
export function Join({ token }: { token: string }) {
  const s = useStore();
  const [preview, setPreview] = useState<InvitePreview | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    A.get<InvitePreview>(`/groups/invites/${encodeURIComponent(token)}`).then(setPreview, (e) => setError(errorText(e)));
  }, [token]);
  async function join() {
    try {
      const g = await A.post<Group>('/groups/join', { token });
      await Promise.all([s.refreshGroups(), s.refreshConvs()]);
      store.say(t('join_done'));
      s.navigate(convPath(g.conv));
    } catch (e) {
      if (e instanceof A.ApiError && e.code === 'already_member' && preview) {
        s.navigate(convPath(`g:${preview.group_id}`));
      } else setError(errorText(e));
    }
  }
  return (
    <div class="auth join" data-testid="join-page">
      <div class="card">
        {preview && (
          <>
            <p class="muted">{t('join_title')}</p>
            <div class="row">
              <Avatar name={preview.name} group />
              <div>
                <h1 data-testid="join-group-name">{preview.name}</h1>
                <p class="muted">{t('members_n', { n: preview.member_count })}</p>
              </div>
            </div>
          </>
        )}
        {error && (
          <p class="error" role="alert" data-testid="join-error">
            {error}
          </p>
        )}
        {preview && s.me && (
          <button class="primary" data-testid="join-btn" onClick={() => void join()}>
            {t('join_button')}
          </button>
        )}
      </div>
      {!s.me && <Auth hint={t('join_sign_in')} />}
    </div>
  );
}
