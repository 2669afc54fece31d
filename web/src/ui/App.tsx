import { store } from '../store';
import { t } from '../i18n';
import { useStore, useTick } from './hooks';
import { Auth } from './Auth';
import { ConvList } from './ConvList';
import { Chat } from './Chat';
import { Contacts } from './Contacts';
import { Groups } from './Groups';
import { Me } from './Me';
import { MessageSearch } from './MessageSearch';
import { Join } from './Join';
import { Icon } from './Icon';

function Banner() {
  const s = useStore();
  useTick(1000);
  if (!s.me) return null;
  if (s.conn === 'open' || (s.conn === 'connecting' && !s.everConnected)) return null;
  let text = t('conn_connecting');
  if (s.conn === 'waiting' && s.retryAt) text = t('conn_waiting', { s: Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000)) });
  if (s.conn === 'stopped' && s.connCode === 4001) text = t('conn_replaced');
  return (
    <div class="banner" role="status" data-testid="conn-banner">
      <span>{text}</span>
      {s.conn !== 'connecting' && (
        <button class="link" onClick={() => s.reconnect()}>
          {t('conn_retry')}
        </button>
      )}
    </div>
  );
}

function Toast() {
  const s = useStore();
  if (!s.toast && !s.notice) return null;
  return (
    <div class="toasts">
      {s.notice && (
        <div class="toast notice" role="status" onClick={() => ((s.notice = null), s.changed())}>
          {s.notice}
        </div>
      )}
      {s.toast && (
        <div class="toast" role="alert" data-testid="toast" onClick={() => ((s.toast = null), s.changed())}>
          {s.toast.text}
        </div>
      )}
    </div>
  );
}

const NAV = [
  ['chats', '/'],
  ['contacts', '/contacts'],
  ['groups', '/groups'],
  ['me', '/me'],
] as const;

function Shell() {
  const s = useStore();
  const { view, conv } = s.route;
  const requests = s.pendingIncoming().length;
  const unread = [...s.convs.values()].reduce((n, c) => n + (c.dnd ? 0 : c.unread), 0);
  return (
    <div class={`shell ${conv ? 'has-conv' : ''} view-${view}`}>
      <nav class="nav">
        {NAV.map(([v, path]) => (
          <a
            href={path}
            class={view === v ? 'on' : ''}
            data-testid={`nav-${v}`}
            onClick={(e) => {
              e.preventDefault();
              s.navigate(path);
            }}
          >
            <Icon name={v} size={22} />
            <span class="label">{t(v)}</span>
            {v === 'chats' && unread > 0 && <span class="badge">{unread > 99 ? '99+' : unread}</span>}
            {v === 'contacts' && requests > 0 && <span class="badge" data-testid="requests-badge">{requests}</span>}
          </a>
        ))}
      </nav>
      <aside class="side">
        {view === 'chats' && (
          <>
            <MessageSearch />
            <ConvList />
          </>
        )}
        {view === 'contacts' && <Contacts />}
        {view === 'groups' && <Groups />}
        {view === 'me' && <Me />}
      </aside>
      <main class="main">{conv ? <Chat conv={conv} key={conv} /> : <div class="empty">{t('select_conv')}</div>}</main>
    </div>
  );
}

export function App() {
  const s = useStore();
  if (!s.ready) return <div class="empty">{t('loading')}</div>;
  return (
    <>
      <Banner />
      {s.route.view === 'join' ? <Join token={s.route.token ?? ''} /> : s.me ? <Shell /> : <Auth />}
      <Toast />
    </>
  );
}

export { store };
