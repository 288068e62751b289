// Home: write a brief and Start (a new session is created, opened and started in one go), create
// an empty session, open an existing one from its link or id, or pick one of "Your sessions".

import { useId, useRef, useState } from "react";
import { ApiError, createSession } from "../net/api";
import { sessionClient } from "../net/client";
import { openSession, parseSessionRef } from "../routing";
import type { ApprovalMode, ModelChoices } from "../protocol/types";
import { useModelsStore } from "../store/models";
import { setAccessToken } from "../lib/token";
import { BriefForm } from "./BriefForm";
import { Button } from "./ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "./ui/card";
import { YourSessions } from "./YourSessions";

export function HomePage() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [needToken, setNeedToken] = useState(false);
  const [token, setToken] = useState("");
  const [ref, setRef] = useState("");
  const [refError, setRefError] = useState<string | null>(null);
  const tokenId = useId();
  const refId = useId();
  // What the user tried when the server asked for a token: done again once the token is saved.
  const retry = useRef<(() => void) | null>(null);
  // Bumped when a token is saved: "Your sessions" loads again with it.
  const [authVersion, setAuthVersion] = useState(0);

  // The list was refused for want of the token: ask for it here, once, like creating does.
  const listNeedsToken = () => {
    setNeedToken(true);
    setError((current) => current ?? "This BotArmy needs an access token. Enter it below to see your sessions and start new ones.");
  };

  const create = async (then?: (id: string) => void) => {
    setBusy(true);
    setError(null);
    try {
      const id = await createSession();
      sessionClient.connect(id);
      then?.(id);
      openSession(id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        retry.current = () => void create(then);
        setNeedToken(true);
        setError("This BotArmy needs an access token to create sessions. Enter it below and try again.");
      } else {
        setError(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const start = (brief: string, approval: ApprovalMode, models?: ModelChoices) => {
    void create(() => sessionClient.sendWhenLive(models ? { type: "start", brief, approval, models } : { type: "start", brief, approval }));
  };

  return (
    <main className="mx-auto grid max-w-5xl grid-cols-1 gap-4 px-3 py-4 sm:px-4 sm:py-6 lg:grid-cols-[minmax(0,1fr)_18rem]">
      <Card>
        <CardHeader>
          <h1 className="text-lg font-semibold leading-tight">Turn a project brief into a delivery plan</h1>
          <p className="text-sm text-slate-600">
            Five agents work in order — Analyst, Architect, Developer, Tester, Deployer — and you watch every word as it is written.
          </p>
        </CardHeader>
        <CardContent>
          <BriefForm onStart={start} busy={busy} />
          {error ? (
            <p role="alert" data-testid="home-error" className="mt-3 rounded-md border border-red-300 bg-red-50 p-2 text-sm text-red-900">
              {error}
            </p>
          ) : null}
          {needToken ? (
            <form
              className="mt-3 flex flex-wrap items-end gap-2"
              onSubmit={(e) => {
                e.preventDefault();
                setAccessToken(token);
                // The catalog needs the token too: the pickers appear once it loads.
                useModelsStore.getState().load(true);
                setAuthVersion((v) => v + 1);
                setNeedToken(false);
                setError(null);
                const again = retry.current;
                retry.current = null;
                again?.();
              }}
            >
              <label htmlFor={tokenId} className="text-sm font-medium">
                Access token
                <input
                  id={tokenId}
                  data-testid="access-token-input"
                  type="password"
                  autoComplete="off"
                  value={token}
                  onChange={(e) => setToken(e.target.value)}
                  className="mt-1 block w-64 max-w-full rounded-md border border-slate-300 px-2 py-1.5 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                />
              </label>
              <Button type="submit" variant="primary" data-testid="save-token-button" disabled={!token.trim()}>
                Save token and continue
              </Button>
            </form>
          ) : null}
        </CardContent>
      </Card>
      <div className="flex flex-col gap-4">
        <Card>
          <CardHeader>
            <CardTitle>Open a session</CardTitle>
            <p className="text-sm text-slate-600">Paste a session link someone shared (a control or view-only link), or its id.</p>
          </CardHeader>
          <CardContent>
            <form
              className="space-y-2"
              onSubmit={(e) => {
                e.preventDefault();
                const id = parseSessionRef(ref);
                if (id) openSession(id);
                else setRefError("That is not a BotArmy session link, session id (32 hex characters) or view key.");
              }}
            >
              <label htmlFor={refId} className="sr-only">
                Session link or id
              </label>
              <input
                id={refId}
                data-testid="open-session-input"
                value={ref}
                onChange={(e) => {
                  setRef(e.target.value);
                  setRefError(null);
                }}
                placeholder="https://…/?s=… or id"
                aria-invalid={refError ? true : undefined}
                className="block w-full rounded-md border border-slate-300 px-2 py-1.5 text-sm focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
              />
              {refError ? <p className="text-xs text-red-700">{refError}</p> : null}
              <Button type="submit" variant="outline" size="sm" disabled={!ref.trim()}>
                Open
              </Button>
            </form>
          </CardContent>
        </Card>
        <Card>
          <CardHeader>
            <CardTitle>Empty session</CardTitle>
            <p className="text-sm text-slate-600">Create a session now and share its link before starting.</p>
          </CardHeader>
          <CardContent>
            <Button variant="outline" size="sm" data-testid="create-session-button" disabled={busy} onClick={() => void create()}>
              Create session
            </Button>
          </CardContent>
        </Card>
      </div>
      <YourSessions authVersion={authVersion} onUnauthorized={listNeedsToken} />
    </main>
  );
}
