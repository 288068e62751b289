import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { useConnectionStore } from "./store/connection";
import { useSessionStore } from "./store/session";
import "./index.css";

// A read-only window into the view model for end-to-end tests and support ("what does the page
// think it has?"): compare lastSeq and messages with GET /api/sessions/{id}/events.
declare global {
  interface Window {
    __botarmy?: { view(): unknown; connection(): unknown };
  }
}
window.__botarmy = {
  view: () => useSessionStore.getState().view,
  connection: () => {
    const { setSnapshot: _s, reset: _r, ...snapshot } = useConnectionStore.getState();
    return snapshot;
  },
};

const root = document.getElementById("root");
if (!root) throw new Error("BotArmy: #root element missing from index.html");

createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
