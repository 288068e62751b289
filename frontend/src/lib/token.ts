// The optional access token (BOTARMY_ACCESS_TOKEN on the server). Kept in localStorage; sent as
// `Authorization: Bearer` on every HTTP request (net/api.ts) and as the `botarmy.token.<token>` WebSocket subprotocol, never
// in a URL.

const KEY = "botarmy.accessToken";

export function getAccessToken(): string | null {
  try {
    const value = window.localStorage.getItem(KEY);
    return value && value.trim() ? value.trim() : null;
  } catch {
    return null;
  }
}

export function setAccessToken(token: string | null): void {
  try {
    if (token && token.trim()) window.localStorage.setItem(KEY, token.trim());
    else window.localStorage.removeItem(KEY);
  } catch {
    // Private mode without storage: the token lasts for this page only.
  }
}

/**
 * The subprotocols to offer. With a token, `botarmy.v1` is offered first: a browser fails the
 * handshake unless the server picks one of the offered protocols, and the Worker picks that one
 * (it never echoes the token).
 */
export function tokenProtocols(): string[] | null {
  const token = getAccessToken();
  return token ? ["botarmy.v1", `botarmy.token.${token}`] : null;
}
