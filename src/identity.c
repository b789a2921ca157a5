/* identity: NSS lookups into plain values.  See identity.h. */
#include "config.h"

#include "identity.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK(spawn-fcgi-identity-error, identity_error)

/* A whole decimal number that fits an id_t, without sign or junk; -1 is
 * reserved by the kernel as "no change" and is never a valid id. */
static gboolean parse_id(const char *s, guint32 *out)
{
  guint64 v;
  if (s == NULL || !g_ascii_isdigit(s[0]))
    return FALSE;
  if (!g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT32 - 1, &v, NULL))
    return FALSE;
  *out = (guint32) v;
  return TRUE;
}

static gboolean fill_groups(Identity *id, GError **error)
{
  int n = 32;
  for (int tries = 0; tries < 16; tries++) {
    gid_t *groups = g_new(gid_t, n);
    int want = n;
    if (getgrouplist(id->name, id->gid, groups, &want) >= 0) {
      id->groups = groups;
      id->n_groups = (gsize) want;
      return TRUE;
    }
    g_free(groups);
    if (want <= n || want > 65536) {
      g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_FAILED,
                  "cannot list the groups of user '%s'", id->name);
      return FALSE;
    }
    n = want;
  }
  g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_FAILED,
              "cannot list the groups of user '%s'", id->name);
  return FALSE;
}

static gboolean from_passwd(const struct passwd *pw, Identity *out, GError **error)
{
  out->name = g_strdup(pw->pw_name);
  out->uid = pw->pw_uid;
  out->gid = pw->pw_gid;
  out->home = g_strdup(pw->pw_dir);
  return fill_groups(out, error);
}

gboolean identity_lookup_user(const char *spec, Identity *out, GError **error)
{
  guint32 num;
  struct passwd *pw;

  memset(out, 0, sizeof *out);
  out->gid = (gid_t) -1;

  if (spec == NULL || spec[0] == '\0') {
    g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_USER,
                "empty user name");
    return FALSE;
  }

  errno = 0;
  if (parse_id(spec, &num)) {
    pw = getpwuid((uid_t) num);
    if (pw == NULL) {
      if (errno != 0 && errno != ENOENT && errno != ESRCH) {
        g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_FAILED,
                    "cannot look up uid %s: %s", spec, g_strerror(errno));
        return FALSE;
      }
      out->uid = (uid_t) num;
      return TRUE;
    }
  } else {
    pw = getpwnam(spec);
    if (pw == NULL) {
      if (errno != 0 && errno != ENOENT && errno != ESRCH)
        g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_FAILED,
                    "cannot look up user '%s': %s", spec, g_strerror(errno));
      else
        g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_USER,
                    "unknown user '%s'", spec);
      return FALSE;
    }
  }
  if (!from_passwd(pw, out, error)) {
    identity_clear(out);
    return FALSE;
  }
  return TRUE;
}

gboolean identity_lookup_group(const char *spec, gid_t *out, GError **error)
{
  guint32 num;
  struct group *gr;

  if (spec == NULL || spec[0] == '\0') {
    g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_GROUP,
                "empty group name");
    return FALSE;
  }
  if (parse_id(spec, &num)) {
    *out = (gid_t) num;
    return TRUE;
  }
  errno = 0;
  gr = getgrnam(spec);
  if (gr == NULL) {
    if (errno != 0 && errno != ENOENT && errno != ESRCH)
      g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_FAILED,
                  "cannot look up group '%s': %s", spec, g_strerror(errno));
    else
      g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_GROUP,
                  "unknown group '%s'", spec);
    return FALSE;
  }
  *out = gr->gr_gid;
  return TRUE;
}

static gboolean member_listed(char **members, const char *user)
{
  if (user == NULL || members == NULL)
    return FALSE;
  for (char **m = members; *m != NULL; m++)
    if (strcmp(*m, user) == 0)
      return TRUE;
  return FALSE;
}

gboolean identity_group_by_name(const char *name, const char *member, gid_t *gid,
                                gboolean *listed)
{
  struct group *gr = getgrnam(name);
  if (gr == NULL)
    return FALSE;
  *gid = gr->gr_gid;
  *listed = member_listed(gr->gr_mem, member);
  return TRUE;
}

gboolean identity_group_by_gid(gid_t gid, const char *member, gboolean *listed)
{
  struct group *gr = getgrgid(gid);
  if (gr == NULL)
    return FALSE;
  *listed = member_listed(gr->gr_mem, member);
  return TRUE;
}

gboolean identity_lookup_self(Identity *out, GError **error)
{
  g_autofree char *uid = g_strdup_printf("%u", (unsigned) getuid());
  if (!identity_lookup_user(uid, out, error))
    return FALSE;
  if (out->name == NULL) {
    out->gid = getgid();
    identity_set_only_group(out, out->gid);
  }
  return TRUE;
}

gboolean identity_set_primary_group(Identity *id, gid_t gid, GError **error)
{
  if (id->name == NULL) {
    identity_set_only_group(id, gid);
    return TRUE;
  }
  g_clear_pointer(&id->groups, g_free);
  id->n_groups = 0;
  id->gid = gid;
  return fill_groups(id, error);
}

void identity_set_only_group(Identity *id, gid_t gid)
{
  g_free(id->groups);
  id->gid = gid;
  id->groups = g_new(gid_t, 1);
  id->groups[0] = gid;
  id->n_groups = 1;
}

void identity_clear(Identity *id)
{
  g_clear_pointer(&id->name, g_free);
  g_clear_pointer(&id->home, g_free);
  g_clear_pointer(&id->groups, g_free);
  id->n_groups = 0;
}
