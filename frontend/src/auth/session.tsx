// The signed-in session: tokens (through the API client), the /me answer, and what the header and the route
// guards derive from it (staff flag, active organisation, its kind, the caller's role).

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, type ApiClient } from '../api/client';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { isMFAChallenge, type MFAChallenge, type MFAFactor, type Me, type Organization, type OrgKind, type OrgRole, type SignupInput, type SignupResult, type TokenPair } from '../api/types';

export type SessionStatus = 'loading' | 'anonymous' | 'authenticated';

export interface Session {
  status: SessionStatus;
  me: Me | null;
  activeOrg: Organization | null;
  kind: OrgKind | null;
  role: OrgRole | null;
  isStaff: boolean;
  isOrgAdmin: boolean;
  /** Signs in, or answers the challenge of two-step sign-in (then completeSignIn finishes with a code). */
  signIn: (email: string, password: string) => Promise<MFAChallenge | null>;
  /** The second step: the challenge's mfa_token and a TOTP code or a recovery code. */
  completeSignIn: (mfaToken: string, factor: MFAFactor) => Promise<void>;
  /** Finish an OpenID Connect sign-in: trade the callback's code for tokens, kept as signIn keeps them. */
  signInWithCode: (code: string) => Promise<void>;
  signUp: (input: SignupInput) => Promise<SignupResult>;
  signOut: () => Promise<void>;
  reloadMe: () => Promise<void>;
  /** True while the signed-in user's e-mail address is not verified (they may browse, not spend or launch). */
  emailUnverified: boolean;
  /** After the address is verified: new tokens (their email_verified claim) and /me again. */
  refreshVerified: () => Promise<void>;
  /** Act for another of the user's organisations (new tokens for it). */
  switchOrganization: (orgId: string) => Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

export function deriveRoles(me: Me | null) {
  const m = me?.memberships.find((x) => x.organization.id === me.active_organization_id) ?? me?.memberships[0] ?? null;
  return {
    activeOrg: m?.organization ?? null,
    // The document's strings carry no enumeration: identity answers only these kinds and roles.
    kind: (m?.organization.kind ?? null) as OrgKind | null,
    role: (m?.role ?? null) as OrgRole | null,
    isStaff: !!me?.user.is_staff,
    isOrgAdmin: m?.role === 'owner' || m?.role === 'admin',
  };
}

export function SessionProvider({ children, client = api }: { children: ReactNode; client?: ApiClient }) {
  const ids = useMemo(() => identity(client), [client]);
  const [me, setMe] = useState<Me | null>(null);
  const [status, setStatus] = useState<SessionStatus>(client.tokens.hasSession() ? 'loading' : 'anonymous');

  const reloadMe = useCallback(async () => {
    try {
      const m = await ids.me();
      setMe(m);
      setStatus('authenticated');
    } catch (e) {
      if (isApiError(e) && (e.status === 401 || e.status === 403)) {
        client.tokens.clear();
      }
      setMe(null);
      setStatus('anonymous');
    }
  }, [ids, client]);

  useEffect(() => {
    if (client.tokens.hasSession()) void reloadMe();
    client.onSessionExpired = () => {
      setMe(null);
      setStatus('anonymous');
    };
    return () => {
      client.onSessionExpired = undefined;
    };
  }, [client, reloadMe]);

  const signIn = useCallback(
    async (email: string, password: string) => {
      const res = await ids.login(email, password);
      if (isMFAChallenge(res)) return res;
      client.tokens.set(res.access_token, res.refresh_token);
      await reloadMe();
      return null;
    },
    [ids, client, reloadMe],
  );

  const completeSignIn = useCallback(
    async (mfaToken: string, factor: MFAFactor) => {
      const pair = await ids.loginMFA(mfaToken, factor);
      client.tokens.set(pair.access_token, pair.refresh_token);
      await reloadMe();
    },
    [ids, client, reloadMe],
  );

  const signInWithCode = useCallback(
    async (code: string) => {
      const pair = await ids.oidcExchange(code);
      client.tokens.set(pair.access_token, pair.refresh_token);
      await reloadMe();
    },
    [ids, client, reloadMe],
  );

  const signUp = useCallback(
    async (input: SignupInput) => {
      const res = await ids.signup(input);
      client.tokens.set(res.access_token, res.refresh_token);
      await reloadMe();
      return res;
    },
    [ids, client, reloadMe],
  );

  const signOut = useCallback(async () => {
    const rt = client.tokens.refreshToken;
    try {
      if (rt) await ids.logout(rt);
    } catch {
      // the token is dropped locally either way
    }
    client.tokens.clear();
    setMe(null);
    setStatus('anonymous');
  }, [ids, client]);

  const refreshVerified = useCallback(async () => {
    if (!client.tokens.refreshToken) return;
    await client.refresh();
    await reloadMe();
  }, [client, reloadMe]);

  const switchOrganization = useCallback(
    async (orgId: string) => {
      const rt = client.tokens.refreshToken;
      if (!rt) return;
      const pair = await client.post<TokenPair>('/identity/refresh', { refresh_token: rt, organization_id: orgId }, { auth: false });
      client.tokens.set(pair.access_token, pair.refresh_token);
      await reloadMe();
    },
    [client, reloadMe],
  );

  const value = useMemo<Session>(
    () => ({
      status,
      me,
      ...deriveRoles(me),
      emailUnverified: status === 'authenticated' && me?.user.email_verified === false,
      signIn,
      completeSignIn,
      signInWithCode,
      signUp,
      signOut,
      reloadMe,
      refreshVerified,
      switchOrganization,
    }),
    [status, me, signIn, completeSignIn, signInWithCode, signUp, signOut, reloadMe, refreshVerified, switchOrganization],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** useOptionalSession is useSession for shared components that may render outside a SessionProvider (tests). */
export function useOptionalSession(): Session | null {
  return useContext(SessionContext);
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}
