/* Placeholder: being written. */
#include "imap/commands.h"

void
cmd_fetch(struct imap_cmd *cmd)
{
	imap_cmd_bad(cmd, "Unknown command.");
}
