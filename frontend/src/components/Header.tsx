import { memo, useEffect, useState } from "react";
import { getHealth } from "../net/api";
import { goHome } from "../routing";
import { useSessionStore } from "../store/session";
import { isViewKey } from "../lib/sessionKey";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { ShareMenu } from "./ShareMenu";
import { RunStatusBadge } from "./StatusBadge";
import { Badge } from "./ui/badge";

/** Demo mode: the session's welcome says so, or (before any session) /api/health does. */
function useDemo(): boolean {
  const sessionDemo = useSessionStore((s) => s.view.welcome?.demo ?? s.view.state?.demo ?? null);
  const [healthDemo, setHealthDemo] = useState<boolean | null>(null);
  useEffect(() => {
    let alive = true;
    getHealth()
      .then((h) => alive && setHealthDemo(h.provider === "demo"))
      .catch(() => undefined);
    return () => {
      alive = false;
    };
  }, []);
  return sessionDemo ?? healthDemo ?? false;
}

export const Header = memo(function Header({ sessionId }: { sessionId: string | null }) {
  const demo = useDemo();
  const run = useSessionStore((s) => s.view.state?.run ?? null);
  const model = useSessionStore((s) => s.view.welcome?.model ?? s.view.state?.model ?? null);
  // The key's shape answers at once; the welcome confirms (or, on a server that says so, decides).
  const storeReadOnly = useSessionStore((s) => s.view.sessionId === sessionId && s.view.readOnly);
  const readOnly = isViewKey(sessionId) || storeReadOnly;

  return (
    <header className="sticky top-0 z-20 border-b border-slate-200 bg-white/95 backdrop-blur">
      <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-3 gap-y-2 px-3 py-2 sm:px-4">
        <a
          href="/"
          onClick={(e) => {
            e.preventDefault();
            goHome();
          }}
          className="flex items-center gap-2 rounded font-bold tracking-tight focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        >
          <img src="/favicon.svg" alt="" className="h-6 w-6" />
          BotArmy
        </a>
        {demo ? (
          <Badge tone="amber" data-testid="demo-badge" title="No OpenAI key is configured: agents answer with built-in demo text.">
            Demo mode
          </Badge>
        ) : null}
        {sessionId && readOnly ? (
          <Badge tone="blue" data-testid="view-only-badge" title="You opened a view-only link: you can watch and read, not change anything.">
            View only
          </Badge>
        ) : null}
        {sessionId && run ? <RunStatusBadge status={run.status} pauseRequested={run.pauseRequested} /> : null}
        {sessionId && model && !demo ? <span className="hidden text-xs text-slate-500 sm:inline">model {model}</span> : null}
        <div className="ml-auto flex flex-wrap items-center gap-2">
          {sessionId ? (
            <>
              <ConnectionIndicator />
              <ShareMenu key={sessionId} sessionKey={sessionId} readOnly={readOnly} />
            </>
          ) : null}
        </div>
      </div>
    </header>
  );
});
