// Where the token lives. The protocol allows one connection per device, so each browser tab
// that is open at once needs a device of its own: the first tab uses the session kept in
// localStorage (and holds a Web Lock named after its device); a second tab finds that lock taken
// and asks to sign in again, as another device, whose session it keeps in sessionStorage.

export interface Saved {
  token: string;
  device_id: number;
}

const KEY = 'im.session';
let release: (() => void) | null = null;
let where: 'local' | 'tab' | null = null;

function read(s: Storage): Saved | null {
  try {
    const v = JSON.parse(s.getItem(KEY) ?? 'null');
    return v && typeof v.token === 'string' ? v : null;
  } catch {
    return null;
  }
}

function lock(deviceId: number): Promise<boolean> {
  const locks = (navigator as any).locks;
  if (!locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    locks
      .request(`im-device-${deviceId}`, { ifAvailable: true }, (l: unknown) => {
        if (!l) {
          resolve(false);
          return undefined;
        }
        resolve(true);
        return new Promise<void>((r) => {
          release = r;
        });
      })
      .catch(() => resolve(true));
  });
}

/** The session this tab may use, or 'busy' when the browser's session is open in another tab. */
export async function restore(): Promise<Saved | 'busy' | null> {
  const tab = read(sessionStorage);
  if (tab) {
    if (await lock(tab.device_id)) {
      where = 'tab';
      return tab;
    }
    // A duplicated tab copies sessionStorage: that device is in use next door.
    sessionStorage.removeItem(KEY);
  }
  const shared = read(localStorage);
  if (!shared) return null;
  if (await lock(shared.device_id)) {
    where = 'local';
    return shared;
  }
  return 'busy';
}

/** Keeps a fresh login: in localStorage unless another tab holds the browser's session. */
export async function save(s: Saved): Promise<void> {
  const shared = read(localStorage);
  const sharedBusy = shared ? !(await lock(shared.device_id)) : false;
  if (!sharedBusy) release?.();
  await lock(s.device_id);
  if (sharedBusy) {
    sessionStorage.setItem(KEY, JSON.stringify(s));
    where = 'tab';
  } else {
    localStorage.setItem(KEY, JSON.stringify(s));
    where = 'local';
  }
}

export function forget(): void {
  if (where === 'tab') sessionStorage.removeItem(KEY);
  else if (where === 'local') localStorage.removeItem(KEY);
  where = null;
  release?.();
  release = null;
}
