# bash completion for forkscope(1). Installed as
# <bash-completion completionsdir>/forkscope (loaded on first use), or source it.

_forkscope_options()
{
	case "$1" in
	run)
		echo "--backend --set --matrix --repeat --shard --timeout --hold --no-stacks
			--rules --probes --out --json --junit --tap --trace --html --verbose
			--color= --help" ;;
	watch)
		echo "--timeout --linger --hold --selfdump --no-stacks --rules --out --json
			--html --junit --color= --help" ;;
	triage)
		echo "--pid --json --no-stacks --python= --rules --from --events --explain
			--color= --help" ;;
	report)
		echo "--format --output --verbose --color= --help" ;;
	scenarios)
		echo "--help" ;;
	clean)
		echo "--keep --dry-run --help" ;;
	esac
}

# Scenario files and the directories that may hold them.
_forkscope_scenario_files()
{
	local IFS=$'\n'
	COMPREPLY+=($(compgen -d -- "$cur"))
	COMPREPLY+=($(compgen -f -X '!*.yaml' -- "$cur"))
	COMPREPLY+=($(compgen -f -X '!*.yml' -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_forkscope_files()
{
	local IFS=$'\n'
	COMPREPLY=($(compgen -f -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_forkscope_dirs()
{
	local IFS=$'\n'
	COMPREPLY=($(compgen -d -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_forkscope_pids()
{
	COMPREPLY=($(compgen -W "$(command ps -eo pid= 2>/dev/null)" -- "$cur"))
}

_forkscope()
{
	local cur prev verb i
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev=""
	[ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"
	local verbs="run watch triage report scenarios clean help"

	# The verb: the first word that is not a global option.
	verb=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--color) [ "${COMP_WORDS[i+1]}" = "=" ] && ((i++)); ((i++)) ;;
		-*) ;;
		*) verb="${COMP_WORDS[i]}"; break ;;
		esac
	done

	# --color=WHEN (bash splits at '=' when it is in COMP_WORDBREAKS).
	if [ "$prev" = "=" ]; then
		prev="${COMP_WORDS[COMP_CWORD-2]}"
	elif [[ "$cur" == --*=* ]]; then
		prev="${cur%%=*}"
		cur="${cur#*=}"
	fi
	case "$prev" in
	--color) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
	--python) COMPREPLY=($(compgen -W "auto off" -- "$cur")); return ;;
	esac

	if [ -z "$verb" ]; then
		if [[ "$cur" == -* ]]; then
			COMPREPLY=($(compgen -W "--color= --help --version" -- "$cur"))
			[[ "${COMPREPLY[0]}" == *= ]] && compopt -o nospace 2>/dev/null
		else
			COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
		fi
		return
	fi

	# watch: after '--' the words are a command of its own.
	if [ "$verb" = watch ]; then
		for ((i = i + 1; i < COMP_CWORD; i++)); do
			if [ "${COMP_WORDS[i]}" = "--" ]; then
				if [ $((i + 1)) -eq "$COMP_CWORD" ]; then
					COMPREPLY=($(compgen -c -- "$cur"))
				else
					_forkscope_files
				fi
				return
			fi
		done
	fi

	case "$verb:$prev" in
	run:--backend | run:-b)
		COMPREPLY=($(compgen -W "mtf fork spawn" -- "$cur")); return ;;
	run:--probes)
		COMPREPLY=($(compgen -W "on off" -- "$cur")); return ;;
	run:--set | run:-s)
		compopt -o nospace 2>/dev/null
		COMPREPLY=($(compgen -W "backend= capture= image= budget= fixes.fd_scrub=
			fixes.reset_sigmask= fixes.stdio= fixes.atfork_locks= fixes.wait=
			fixes.boot_race= fixes.cancel_first= fixes.peer_wait_bound= fixes.tree_kill=
			timeouts.cancel_ack= timeouts.hard_kill= timeouts.peer_wait= timeouts.run=
			timeouts.linger= interrupt.after= interrupt.signal= interrupt.target=
			expect.outcome= expect.verdict= expect.leaked=" -- "$cur")); return ;;
	report:--format | report:-f)
		COMPREPLY=($(compgen -W "text json junit tap trace html" -- "$cur")); return ;;
	*:--out | *:-o)
		if [ "$verb" = report ]; then _forkscope_files; else _forkscope_dirs; fi
		return ;;
	*:--rules | *:--json | *:--junit | *:--tap | *:--trace | *:--html | *:--output | \
	triage:--from | *:--events)
		_forkscope_files; return ;;
	triage:--pid | triage:-p)
		_forkscope_pids; return ;;
	*:--repeat | *:--shard | *:--timeout | *:--linger | *:--keep)
		return ;;
	esac

	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$(_forkscope_options "$verb")" -- "$cur"))
		[[ "${COMPREPLY[0]}" == *= ]] && compopt -o nospace 2>/dev/null
		return
	fi
	case "$verb" in
	run | scenarios) _forkscope_scenario_files ;;
	report) _forkscope_dirs; COMPREPLY+=($(compgen -f -X '!*.json' -- "$cur")) ;;
	triage) _forkscope_pids ;;
	help) COMPREPLY=($(compgen -W "$verbs" -- "$cur")) ;;
	esac
}

complete -F _forkscope forkscope
