/*
 * "herald user": manage the passwd-file (cfg->passwd_file).
 *
 *	herald user add [-s SCHEME] NAME
 *	herald user passwd [-s SCHEME] NAME
 *	herald user del NAME
 *	herald user list
 *
 * add and passwd read the password from the terminal (twice, without echo)
 * or, when stdin is not a terminal, as one line from stdin.  SCHEME is a
 * password scheme such as SHA512-CRYPT (the default), BLF-CRYPT or CRYPT.
 */
#ifndef HERALD_MAIN_CMD_USER_H
#define HERALD_MAIN_CMD_USER_H

struct config;

/* argv[0] is "user", argv[1] the verb.  Returns the exit status: 0, or 1
 * after printing "herald: ..." to stderr.  list prints one name per line
 * to stdout.  Uses getopt (resets optind). */
int cmd_user(int argc, char **argv, const struct config *cfg);

#endif
