import { render } from 'preact';
import { App } from './ui/App';
import { bindText, store } from './store';
import { errorText, lang, setLang, t } from './i18n';
import { bindWorker } from './push';
import './style.css';

bindText(t, errorText);
setLang(lang);
render(<App />, document.getElementById('app') as HTMLElement);
void store.boot();
// The service worker shows pushes while I am offline; a click on one opens its chat here.
bindWorker(lang, (path) => store.navigate(path));
