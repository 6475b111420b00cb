from reftlab.app.cli import main

main()
