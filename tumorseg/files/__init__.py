"""Files: the output-file rule every command writes by (output_files): where a command may write (never over its
input, never over a file it did not create, never through a link below its output folder) and how (a temporary name
beside the file, renamed into place). The lowest stage: it imports only tumorseg.errors."""
