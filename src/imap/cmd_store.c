/* Placeholder: being written. */
#include "imap/commands.h"

void
cmd_store(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_copy(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_move(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}

void
cmd_expunge(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}
