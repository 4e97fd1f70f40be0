/*
 * "herald deliver": local delivery of one message read on stdin, for
 * procmail, Postfix's mailbox_command, cron jobs and scripts.
 *
 *	herald deliver -u USER [-m MAILBOX] [-f SENDER] [-a ADDRESS]
 *	    [-c FILE] [-o key=value ...]
 *
 * The message is stored unchanged except that a leading mbox "From "
 * line is dropped (Postfix's local(8) writes one for commands), as
 * dovecot-lda does.  -f adds "Return-Path: <SENDER>" and -a adds
 * "Delivered-To: ADDRESS" in front.  -m names the mailbox (UTF-8, '/'
 * separated); one that does not exist or cannot be used gets INBOX instead,
 * also as dovecot-lda does.  It is never created.
 *
 * Run as root with `user` set in the config, it switches to that user
 * first, so the files it writes belong to the server.
 *
 * Exit status (sysexits.h, what MTAs expect of a delivery agent):
 *	0  EX_OK	delivered: fsynced and indexed
 *	64 EX_USAGE	bad command line
 *	65 EX_DATAERR	empty message, or over max_message_size
 *	67 EX_NOUSER	USER is not in the passwd file
 *	75 EX_TEMPFAIL	anything the MTA should retry later: the config,
 *			passwd file or mail store failed
 * with a one-line reason on stderr.
 */
#ifndef HERALD_MAIN_CMD_DELIVER_H
#define HERALD_MAIN_CMD_DELIVER_H

struct config;

/* argv[0] is "deliver".  Returns the exit status.  Uses getopt. */
int cmd_deliver(int argc, char **argv, const struct config *cfg);

#endif
