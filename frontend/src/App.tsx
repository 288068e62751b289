import { useEffect } from "react";
import { sessionClient } from "./net/client";
import { useRouteReplay, useRouteSessionId } from "./routing";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { Header } from "./components/Header";
import { HomePage } from "./components/HomePage";
import { ReplayPage } from "./components/ReplayPage";
import { SessionPage } from "./components/SessionPage";
import { isSessionKey } from "./net/api";
import { STAGE_LABEL } from "./protocol/types";
import { useSessionStore } from "./store/session";

export function App() {
  const sessionId = useRouteSessionId();
  const replay = useRouteReplay();

  // One socket for the session in the address bar. Deliberately no effect cleanup: connect() to
  // the same id is a no-op, so React's development double-invocation keeps the same socket.
  useEffect(() => {
    if (sessionId && isSessionKey(sessionId)) sessionClient.connect(sessionId);
    else sessionClient.disconnect();
  }, [sessionId]);

  // The tab title says when the session needs the user, so a background tab is noticed.
  const gateStage = useSessionStore((s) => s.view.state?.gate?.stage ?? null);
  const status = useSessionStore((s) => s.view.state?.run.status ?? null);
  useEffect(() => {
    let prefix = "";
    if (gateStage) prefix = `(!) ${STAGE_LABEL[gateStage]} needs approval · `;
    else if (status === "failed") prefix = "(!) Stopped · ";
    else if (status === "completed") prefix = "Done · ";
    document.title = sessionId ? `${prefix}BotArmy · session ${sessionId.slice(0, 8)}` : "BotArmy";
  }, [sessionId, gateStage, status]);

  return (
    <div className="min-h-screen">
      <a
        href="#main-content"
        className="sr-only focus:not-sr-only focus:fixed focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:p-2 focus:shadow"
      >
        Skip to content
      </a>
      <ErrorBoundary label="the header">
        <Header sessionId={sessionId} />
      </ErrorBoundary>
      <div id="main-content">
        <ErrorBoundary label="the page">{sessionId && replay && isSessionKey(sessionId) ? (
            <ReplayPage key={`replay-${sessionId}`} id={sessionId} />
          ) : sessionId ? (
            <SessionPage key={sessionId} id={sessionId} />
          ) : (
            <HomePage />
          )}</ErrorBoundary>
      </div>
    </div>
  );
}
