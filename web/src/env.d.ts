declare module '*.css';
// Vite's raw imports (the tests read the service worker's source this way).
declare module '*?raw' {
  const text: string;
  export default text;
}
