# bash completion for strata(1)
#
# Install as /usr/share/bash-completion/completions/strata, or source it.
#
# Nothing here lists commands or options. They come from the strata binary at
# completion time, so the completion matches the installed version:
#   strata --list-commands          NAME<TAB>SUMMARY lines
#   strata --list-options           global options, OPTION<TAB>ARG<TAB>DESCRIPTION
#   strata COMMAND --list-options   options of COMMAND, in the same format
#   strata COMMAND --help           usage; the operands are the words outside [...]
#   strata --list-images            one tag per line
# An option's ARG, or an operand such as FILE in "FILE|-", names what to
# complete: FILE completes file names, DIR directories and IMAGE the tags in
# the store. Other values (NAME:TAG, OS/ARCH[/VARIANT]) complete nothing.
# A --store DIR already on the command line is passed on to --list-images.
# NOTE: when `strata --list-options` without a command fails, no global
# option is completed, but the DIR after --store still is.

# Joins the tokens that bash split at COMP_WORDBREAKS characters (":" in
# "name:tag", "=" in "--store=DIR") back into shell words, using the blanks in
# COMP_LINE. Sets `words`, `cword` and `cur` in the caller.
__strata_reassemble_words() {
	local line=$COMP_LINE token trimmed i

	words=()
	cword=0
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		token=${COMP_WORDS[i]}
		trimmed=${line#"${line%%[![:space:]]*}"}
		if ((i > 0)) && [[ ${#trimmed} -eq ${#line} ]]; then
			words[${#words[@]} - 1]+=$token
		else
			words+=("$token")
		fi
		line=${trimmed#"$token"}
		if ((i == COMP_CWORD)); then
			cword=$((${#words[@]} - 1))
		fi
	done
	cur=${words[cword]}
}

# Prints a word with one level of quoting removed (surrounding quotes or
# backslashes) and a leading "~" replaced by $HOME. Expansions such as $VAR
# stay as typed, because completion must not run code from the command line.
__strata_dequote() {
	local word=$1

	if [[ $word == \'*\' || $word == \"*\" ]]; then
		word=${word:1:${#word}-2}
	else
		word=${word//\\/}
	fi
	# shellcheck disable=SC2088 # a literal "~" is what the user typed
	if [[ $word == "~" || $word == "~/"* ]]; then
		word=$HOME${word#"~"}
	fi
	printf '%s\n' "$word"
}

# Prints the ARG field that the caller's $option_list, the output of
# `strata [COMMAND] --list-options`, gives for an option. Prints nothing for an
# unknown option or one without an argument.
__strata_option_arg() {
	local option=$1 line name arg

	while IFS= read -r line; do
		name=${line%%$'\t'*}
		arg=${line#*$'\t'}
		arg=${arg%%$'\t'*}
		if [[ $name == "$option" ]]; then
			printf '%s\n' "$arg"
			return
		fi
	done <<<"$option_list"
}

# Prints the operand kinds of a command, one per line, from the usage in
# `strata COMMAND --help`: bracketed groups are optional arguments and are
# dropped, and "FILE|-" gives FILE. A kind that ends in "..." repeats.
__strata_operand_kinds() {
	local help line usage="" found=0 re='^(.*)\[[^][]*\](.*)$' word alternative
	local -a usage_words alternatives

	help=$("$strata" "$command" --help 2>/dev/null) || return
	while IFS= read -r line; do
		if ((found)); then
			[[ -z ${line//[[:space:]]/} ]] && break
			usage+=" $line"
		elif [[ "$line " == *"strata $command "* ]]; then
			found=1
			usage="$line "
			usage=${usage#*"strata $command "}
		fi
	done <<<"$help"

	while [[ $usage =~ $re ]]; do
		usage="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	done
	read -ra usage_words <<<"$usage"
	for word in "${usage_words[@]}"; do
		IFS='|' read -ra alternatives <<<"$word"
		for alternative in "${alternatives[@]}"; do
			if [[ $alternative == *[A-Z]* ]]; then
				printf '%s\n' "$alternative"
				break
			fi
		done
	done
}

# Adds the completions of a value of the given kind to COMPREPLY.
__strata_complete_value() {
	local kind=${1%...} value=$2 tag

	case $kind in
	FILE)
		compopt -o filenames 2>/dev/null
		mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$value")
		;;
	DIR)
		compopt -o filenames 2>/dev/null
		mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$value")
		;;
	IMAGE)
		while IFS= read -r tag; do
			if [[ -n $tag && $tag == "$value"* ]]; then
				COMPREPLY+=("$tag")
			fi
		done < <("$strata" "${store_args[@]}" --list-images 2>/dev/null)
		;;
	esac
}

_strata() {
	local words cword cur
	__strata_reassemble_words

	local strata
	strata=$(__strata_dequote "${words[0]}")

	# Walk the words before the current one to find the command, a --store
	# value, the number of operands given, and whether the previous word is
	# an option that still needs its argument.
	local command="" option_list="" arg_kind="" i word
	local -a store_args=()
	local operands=0 end_of_options=0

	option_list=$("$strata" --list-options 2>/dev/null)
	for ((i = 1; i < cword; i++)); do
		word=${words[i]}
		arg_kind=""

		if ((end_of_options)) || [[ $word != -* || $word == - ]]; then
			if [[ -z $command ]]; then
				command=$word
				option_list=$("$strata" "$command" --list-options 2>/dev/null)
			else
				operands=$((operands + 1))
			fi
			continue
		fi

		case $word in
		--)
			end_of_options=1
			continue
			;;
		--store=*)
			store_args=(--store "$(__strata_dequote "${word#--store=}")")
			continue
			;;
		--*=*)
			continue
			;;
		esac

		arg_kind=$(__strata_option_arg "$word")
		if [[ -z $arg_kind && $word == --store ]]; then
			arg_kind=DIR
		fi
		if [[ -n $arg_kind ]] && ((i + 1 < cword)); then
			i=$((i + 1))
			if [[ $word == --store ]]; then
				store_args=(--store "$(__strata_dequote "${words[i]}")")
			fi
			arg_kind=""
		fi
	done

	COMPREPLY=()
	if [[ -n $arg_kind ]]; then
		__strata_complete_value "$arg_kind" "$cur"
	elif ((!end_of_options)) && [[ $cur == --*=* ]]; then
		local option=${cur%%=*}
		arg_kind=$(__strata_option_arg "$option")
		if [[ -z $arg_kind && $option == --store ]]; then
			arg_kind=DIR
		fi
		__strata_complete_value "$arg_kind" "${cur#*=}"
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=$option=${COMPREPLY[i]}
		done
	elif ((!end_of_options)) && [[ $cur == -* ]]; then
		local line
		while IFS= read -r line; do
			line=${line%%$'\t'*}
			if [[ -n $line && $line == "$cur"* ]]; then
				COMPREPLY+=("$line")
			fi
		done <<<"$option_list"
	elif [[ -z $command ]]; then
		local line
		while IFS= read -r line; do
			line=${line%%$'\t'*}
			if [[ -n $line && $line == "$cur"* ]]; then
				COMPREPLY+=("$line")
			fi
		done < <("$strata" --list-commands 2>/dev/null)
	else
		local -a kinds
		mapfile -t kinds < <(__strata_operand_kinds)
		local kind=${kinds[operands]}
		if [[ -z $kind && ${#kinds[@]} -gt 0 && ${kinds[-1]} == *... ]]; then
			kind=${kinds[-1]}
		fi
		__strata_complete_value "$kind" "$cur"
	fi

	# Readline replaces only the text after the last ":" or "=" of the word
	# when COMP_WORDBREAKS contains them, so cut the part up to it.
	local breaks=${COMP_WORDBREAKS//[^:=]/}
	if [[ -n $breaks && $cur == *["$breaks"]* ]]; then
		local before_break=${cur%"${cur##*["$breaks"]}"}
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=${COMPREPLY[i]#"$before_break"}
		done
	fi
}

complete -F _strata strata
