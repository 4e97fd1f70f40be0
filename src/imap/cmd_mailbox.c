/* Placeholder: being written. */
#include "imap/commands.h"

void
cmd_create(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_delete(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_rename(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_subscribe(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_unsubscribe(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_list(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_lsub(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_status(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_namespace(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}
