# fish completion for strata(1)
#
# Install as strata.fish in a directory of $fish_complete_path, such as
# ~/.config/fish/completions, or source it.
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

# Prints a word with a leading "~" replaced by $HOME.
function __strata_expand_tilde
    string replace -r -- '^~(?=/|$)' $HOME $argv[1]
end

# Prints the ARG field that an option list, the output of
# `strata [COMMAND] --list-options` passed after the option, gives for the
# option. Prints nothing for an unknown option or one without an argument.
function __strata_option_arg -a option
    for line in $argv[2..-1]
        set -l fields (string split \t -- $line)
        if test "$fields[1]" = "$option"
            printf '%s\n' $fields[2]
            return
        end
    end
end

# Prints the operand kinds of a command, one per line, from the usage in
# `strata COMMAND --help`: bracketed groups are optional arguments and are
# dropped, and "FILE|-" gives FILE. A kind that ends in "..." repeats.
function __strata_operand_kinds -a strata command
    set -l usage
    set -l found 0
    for line in ($strata $command --help 2>/dev/null)
        if test $found = 1
            string match -qr '^\s*$' -- $line; and break
            set usage "$usage $line"
        else if string match -q -- "*strata $command *" "$line "
            set found 1
            set usage (string replace -r -- '^.*?strata '(string escape --style=regex -- $command)' ' '' "$line ")
        end
    end

    while string match -qr -- '\[[^][]*\]' $usage
        set usage (string replace -ar -- '\[[^][]*\]' ' ' $usage)
    end
    for word in (string split -n ' ' -- $usage)
        for alternative in (string split '|' -- $word)
            if string match -qr -- '[A-Z]' $alternative
                printf '%s\n' $alternative
                break
            end
        end
    end
end

# Prints the completions of a value of the given kind, each prefixed with
# `prefix` (for --option=VALUE).
function __strata_complete_value -a kind value prefix strata
    set -l store_args $argv[5..-1]
    switch (string replace -r -- '\.\.\.$' '' $kind)
        case FILE
            __fish_complete_path $value | string replace -r -- '^' $prefix
        case DIR
            __fish_complete_directories $value | string replace -r -- '^' $prefix
        case IMAGE
            # fish itself keeps the tags that match the current token.
            $strata $store_args --list-images 2>/dev/null | string replace -r -- '^' $prefix
    end
end

function __strata_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l strata (__strata_expand_tilde $tokens[1])

    # Walk the words before the current one to find the command, a --store
    # value, the number of operands given, and whether the previous word is
    # an option that still needs its argument.
    set -l command
    set -l store_args
    set -l arg_kind
    set -l operands 0
    set -l end_of_options 0
    set -l option_list ($strata --list-options 2>/dev/null)
    set -l i 2
    while test $i -le (count $tokens)
        set -l word $tokens[$i]
        set i (math $i + 1)
        set arg_kind

        if test $end_of_options = 1; or not string match -q -- '-*' $word; or test "$word" = -
            if test -z "$command"
                set command $word
                set option_list ($strata $command --list-options 2>/dev/null)
            else
                set operands (math $operands + 1)
            end
            continue
        end

        switch $word
            case --
                set end_of_options 1
                continue
            case '--store=*'
                set store_args --store (__strata_expand_tilde (string replace -- --store= '' $word))
                continue
            case '--*=*'
                continue
        end

        set arg_kind (__strata_option_arg $word $option_list)
        if test -z "$arg_kind"; and test "$word" = --store
            set arg_kind DIR
        end
        if test -n "$arg_kind"; and test $i -le (count $tokens)
            if test "$word" = --store
                set store_args --store (__strata_expand_tilde $tokens[$i])
            end
            set i (math $i + 1)
            set arg_kind
        end
    end

    if test -n "$arg_kind"
        __strata_complete_value $arg_kind $current '' $strata $store_args
    else if test $end_of_options = 0; and string match -q -- '--*=*' $current
        set -l option (string replace -r -- '=.*' '' $current)
        set arg_kind (__strata_option_arg $option $option_list)
        if test -z "$arg_kind"; and test "$option" = --store
            set arg_kind DIR
        end
        set -l value (string replace -r -- '^[^=]*=' '' $current)
        __strata_complete_value "$arg_kind" $value "$option=" $strata $store_args
    else if test $end_of_options = 0; and string match -q -- '-*' $current
        for line in $option_list
            set -l fields (string split \t -- $line)
            printf '%s\t%s\n' $fields[1] $fields[3]
        end
    else if test -z "$command"
        $strata --list-commands 2>/dev/null
    else
        set -l kinds (__strata_operand_kinds $strata $command)
        set -l kind $kinds[(math $operands + 1)]
        if test -z "$kind"; and string match -q -- '*...' "$kinds[-1]"
            set kind $kinds[-1]
        end
        test -n "$kind"; and __strata_complete_value $kind $current '' $strata $store_args
    end
end

complete -c strata -f -a '(__strata_complete)'
