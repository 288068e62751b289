// Always-visible connection state: Connected (live / catching up), Reconnecting (attempt n, next
// try in s seconds), Offline, Session gone, Link revoked, with "Reconnect now" whenever trying
// can help.
// "Connected" is honest: the socket's heartbeat (net/socket.ts) turns it into Reconnecting
// within 3.5 s of the last frame when the network dies silently.

import { memo } from "react";
import { sessionClient } from "../net/client";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";
import { secondsUntil } from "../lib/format";
import { useNow } from "../lib/useNow";
import { cn } from "../lib/cn";
import { Button } from "./ui/button";

export const ConnectionIndicator = memo(function ConnectionIndicator() {
  const status = useConnectionStore((s) => s.status);
  const attempt = useConnectionStore((s) => s.attempt);
  const nextRetryAt = useConnectionStore((s) => s.nextRetryAt);
  const offlineReason = useConnectionStore((s) => s.offlineReason);
  const lastClose = useConnectionStore((s) => s.lastClose);
  const sync = useSessionStore((s) => s.view.sync);
  const now = useNow(status === "reconnecting" || status === "offline");

  let dot = "bg-slate-400";
  let text: string;
  let detail: string | null = null;
  switch (status) {
    case "connected":
      dot = sync === "live" ? "bg-emerald-500" : "bg-sky-500 animate-pulse";
      text = sync === "live" ? "Connected" : "Connected · catching up…";
      break;
    case "connecting":
      dot = "bg-sky-500 animate-pulse";
      text = "Connecting…";
      break;
    case "reconnecting": {
      dot = "bg-amber-500 animate-pulse";
      text = `Reconnecting (attempt ${attempt}`;
      text += nextRetryAt !== null && nextRetryAt > now ? `, next try in ${secondsUntil(nextRetryAt, now)} s)` : ", trying now)";
      break;
    }
    case "offline":
      dot = "bg-red-500";
      text = "Offline";
      detail =
        offlineReason === "no_network"
          ? "Your device has no network; the page reconnects when it returns."
          : "The server could not be reached after many tries.";
      break;
    case "gone":
      dot = "bg-red-500";
      text = "Session gone";
      detail = "This session no longer exists (it was deleted or expired).";
      break;
    case "revoked":
      dot = "bg-red-500";
      text = "Link revoked";
      detail = "This view link was revoked by the session's owner.";
      break;
    case "closed":
    default:
      text = "Not connected";
  }
  const canReconnect = status === "reconnecting" || status === "offline";
  const closeInfo = lastClose && status !== "connected" ? `Last close: code ${lastClose.code}${lastClose.reason ? ` (${lastClose.reason})` : ""}` : undefined;

  return (
    <div className="flex items-center gap-2 text-sm" data-testid="connection-status" data-status={status} data-sync={sync}>
      <span className={cn("inline-block h-2.5 w-2.5 shrink-0 rounded-full", dot)} aria-hidden="true" />
      <span role="status" aria-live="polite" title={closeInfo ?? detail ?? undefined} className="text-slate-700">
        {text}
        {detail ? <span className="sr-only"> {detail}</span> : null}
      </span>
      {canReconnect ? (
        <Button size="sm" variant="outline" data-testid="reconnect-button" onClick={() => sessionClient.reconnectNow()}>
          Reconnect now
        </Button>
      ) : null}
    </div>
  );
});
