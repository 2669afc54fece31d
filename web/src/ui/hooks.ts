import { useEffect, useReducer } from 'preact/hooks';
import { store } from '../store';
import { errorText, t } from '../i18n';

/** Renders the component again whenever the store changes. */
export function useStore() {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => store.subscribe(() => bump(undefined)), []);
  return store;
}

/** Renders again every `ms` (clocks, the recall window). */
export function useTick(ms: number) {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    const h = setInterval(() => bump(undefined), ms);
    return () => clearInterval(h);
  }, [ms]);
}

/** Runs an action and shows its failure as a sentence. */
export async function attempt(f: () => Promise<unknown>, done?: string): Promise<boolean> {
  try {
    await f();
    if (done) store.say(t(done));
    return true;
  } catch (e) {
    store.say(errorText(e));
    return false;
  }
}
