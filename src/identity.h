/* identity: resolve users and groups through NSS into plain values.
 *
 * Owns every passwd/group lookup the program makes.  Lookups happen in the
 * deciding phase only: never after chroot and never after the privilege
 * drop, where NSS may read the wrong files or be denied. */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct {
  char *name;        /* passwd name; NULL for a uid with no passwd entry */
  uid_t uid;
  gid_t gid;         /* primary gid (or the one chosen with --group) */
  char *home;        /* NULL when unknown */
  gid_t *groups;     /* supplementary groups, including gid */
  gsize n_groups;
} Identity;

#define IDENTITY_ERROR (identity_error_quark())
GQuark identity_error_quark(void);

typedef enum {
  IDENTITY_ERROR_UNKNOWN_USER,
  IDENTITY_ERROR_UNKNOWN_GROUP,
  IDENTITY_ERROR_ROOT_REFUSED,
  IDENTITY_ERROR_FAILED,
} IdentityError;

/* Parses a user given by name or number.  A name must exist; a number
 * without a passwd entry is accepted (name == NULL, gid == (gid_t)-1,
 * no groups).  The full group list of a known user is filled in with
 * getgrouplist(). */
gboolean identity_lookup_user(const char *spec, Identity *out, GError **error);

/* Parses a group given by name or number into a gid.  A name must exist. */
gboolean identity_lookup_group(const char *spec, gid_t *out, GError **error);

/* A group looked up by name: TRUE when it exists, then *gid is its gid and
 * *listed whether member (NULL: nobody) is in its member list.  No error
 * distinction: an unknown group and a failed lookup are both FALSE. */
gboolean identity_group_by_name(const char *name, const char *member, gid_t *gid,
                                gboolean *listed);

/* The same for a group given by gid. */
gboolean identity_group_by_gid(gid_t gid, const char *member, gboolean *listed);

/* The identity of the calling process's real uid (for limits without -u). */
gboolean identity_lookup_self(Identity *out, GError **error);

/* Makes gid the primary group: a known user gets its group list as
 * initgroups(name, gid) would; a uid without a passwd entry gets { gid }. */
gboolean identity_set_primary_group(Identity *id, gid_t gid, GError **error);

/* Replaces the group list with exactly { gid }. */
void identity_set_only_group(Identity *id, gid_t gid);

void identity_clear(Identity *id);
