//! `http.auth.oauth2ClientCredentials` against loopback servers: a token endpoint that counts
//! what it issues and a target that accepts only the tokens it is told to. Tokens are cached
//! across runs, refreshed after expiry, refetched once when the target refuses them; a failing
//! token endpoint is `AuthFailed`; the wire format of both client authentication styles is
//! asserted at the server; and the token and client secret appear in no status, log line,
//! metric or page of the real binary.

mod idp;
mod probe;
mod shown;
mod tls;
