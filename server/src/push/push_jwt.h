/* push_jwt.h — the OAuth2 service-account assertion: a JWT signed with
 * RS256 (RFC 7523) that the token endpoint exchanges for an access token. */
#ifndef SB_PUSH_JWT_H
#define SB_PUSH_JWT_H

#include <stdint.h>
#include "push/push_parse.h"

#define PUSH_JWT_SCOPE "https://www.googleapis.com/auth/firebase.messaging"

/* The signed JWT for key k at now_s (Unix seconds): header {alg:RS256,
 * typ:JWT, kid}, claims {iss: client_email, scope, aud: token_uri, iat,
 * exp: iat + 3600}. Returns malloc'd text, or NULL on failure. */
char *push_jwt_make(const push_parse_key_t *k, int64_t now_s);

#endif
